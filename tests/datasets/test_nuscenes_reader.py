"""Tests of the nuScenes reader on a hand-made table set and on the real files in ../shared/realdata."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from weak3d.classes import CLASS_COLORS, RAW_CLASSES, RAW_INDEX, map_raw_labels
from weak3d.datasets.geometry import invert_pose, pose_matrix, quaternion_to_matrix, transform_points
from weak3d.datasets.nuscenes import (
    CAMERAS,
    Camera,
    NuScenes,
    NuScenesFormatError,
    cameras_from_calibration_json,
    load_split,
    normalize_uv,
    project_all,
    project_points,
    read_image,
    read_lidarseg,
    read_points,
)
from weak3d.overlay import main as overlay_main
from weak3d.overlay import overlay_points

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
REAL = SHARED / "realdata" / "nuscenes"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared (real sample files) is absent")

VERSION = "v1.0-mini"
W, H = 64, 48
K = [[50.0, 0.0, 32.0], [0.0, 50.0, 24.0], [0.0, 0.0, 1.0]]
# LiDAR mounted 1 m forward and 2 m up, turned 90 deg about z (like nuScenes' LIDAR_TOP, x right).
LIDAR_CS = {
    "translation": [1.0, 0.0, 2.0],
    "rotation": [math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4)],
}
# Camera-to-ego rotation of a forward camera: optical axis (z) -> ego x, image x -> ego -y.
Q_FRONT = np.array([0.5, -0.5, 0.5, -0.5])
CAM_YAW_DEG = {
    "CAM_FRONT": 0,
    "CAM_FRONT_RIGHT": -55,
    "CAM_FRONT_LEFT": 55,
    "CAM_BACK": 180,
    "CAM_BACK_LEFT": 110,
    "CAM_BACK_RIGHT": -110,
}
CAM_TRANSLATION = [1.5, 0.0, 1.5]


def qmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of (w, x, y, z) quaternions."""
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ]
    )


def lidar_from_ego(p_ego: np.ndarray) -> np.ndarray:
    """Ego-frame point -> LiDAR frame of the tiny rig (independent of the reader's code)."""
    d = np.asarray(p_ego, dtype=np.float64) - LIDAR_CS["translation"]
    return np.array([d[1], -d[0], d[2]])  # inverse of a +90 deg yaw


def write_bin(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    array.tofile(path)


@pytest.fixture()
def tiny(tmp_path: Path) -> Path:
    """A nuScenes-layout dataset: 1 scene, 2 samples, LiDAR sweeps between them, 6 small cameras.

    LIDAR_TOP chain: sweep0 -> key0 (sample0) -> sweep1 -> key1 (sample1). The ego drives along
    global +x with identity rotation: x = 9, 10, 11, 12 m at the four sweeps; each camera image is
    taken 1 m further along than its key frame, so ego-motion compensation is visible.
    """
    root = tmp_path / "nusc"
    t = {  # name -> table records
        "log": [
            {
                "token": "log0",
                "logfile": "tiny-log",
                "vehicle": "v",
                "date_captured": "2024-01-01",
                "location": "tiny",
            }
        ],
        "scene": [
            {
                "token": "scene0",
                "log_token": "log0",
                "nbr_samples": 2,
                "name": "scene-0001",
                "description": "tiny",
                "first_sample_token": "sample0",
                "last_sample_token": "sample1",
            }
        ],
        "sample": [
            {
                "token": "sample0",
                "timestamp": 1_000_000,
                "prev": "",
                "next": "sample1",
                "scene_token": "scene0",
            },
            {
                "token": "sample1",
                "timestamp": 1_500_000,
                "prev": "sample0",
                "next": "",
                "scene_token": "scene0",
            },
        ],
        "sensor": [{"token": "s_lidar", "channel": "LIDAR_TOP", "modality": "lidar"}]
        + [{"token": f"s_{c}", "channel": c, "modality": "camera"} for c in CAMERAS],
        "calibrated_sensor": [
            {"token": "cs_lidar", "sensor_token": "s_lidar", "camera_intrinsic": [], **LIDAR_CS}
        ],
        "category": [
            {"token": f"cat{i}", "name": n, "description": "", "index": i} for i, n in enumerate(RAW_CLASSES)
        ],
        "ego_pose": [],
        "sample_data": [],
        "lidarseg": [],
    }
    for cam, yaw in CAM_YAW_DEG.items():
        half = math.radians(yaw) / 2
        q = qmul(np.array([math.cos(half), 0, 0, math.sin(half)]), Q_FRONT)
        t["calibrated_sensor"].append(
            {
                "token": f"cs_{cam}",
                "sensor_token": f"s_{cam}",
                "translation": CAM_TRANSLATION,
                "rotation": q.tolist(),
                "camera_intrinsic": K,
            }
        )

    def ego(token: str, x: float, ts: int) -> str:
        t["ego_pose"].append(
            {"token": token, "timestamp": ts, "translation": [x, 0.0, 0.0], "rotation": [1.0, 0.0, 0.0, 0.0]}
        )
        return token

    # Key-frame sweeps: a point 20 m ahead of the ego at camera height (seen by CAM_FRONT), one far
    # behind, and one near the ego. Non-key sweeps: one point away from the ego, two on it.
    key_points = np.zeros((4, 5), np.float32)
    key_points[0, :3] = lidar_from_ego([20.0, 0.0, 1.5])
    key_points[1, :3] = lidar_from_ego([-30.0, 0.0, 1.5])
    key_points[2, :3] = [0.2, 0.3, -1.5]
    key_points[3, :3] = [4.0, 4.0, -1.0]
    key_points[:, 3] = [10, 20, 30, 40]
    key_points[:, 4] = [1, 2, 3, 4]
    sweep_points = np.array(
        [[5, 5, 0, 7, 9], [0.5, 0.5, 0, 1, 1], [-0.9, 0.2, -1, 1, 1], [0.5, 3, 0, 8, 10]], np.float32
    )
    lidar_chain = [
        ("sweep0", 9.0, 900_000, None),
        ("key0", 10.0, 1_000_000, "sample0"),
        ("sweep1", 11.0, 1_250_000, "sample1"),
        ("key1", 12.0, 1_500_000, "sample1"),
    ]
    for i, (name, x, ts, sample) in enumerate(lidar_chain):
        is_key = name.startswith("key")
        folder = "samples" if is_key else "sweeps"
        filename = f"{folder}/LIDAR_TOP/tiny__LIDAR_TOP__{ts}.pcd.bin"
        write_bin(root / filename, key_points if is_key else sweep_points)
        t["sample_data"].append(
            {
                "token": f"lidar_{name}",
                "sample_token": sample or "sample0",
                "ego_pose_token": ego(f"ego_{name}", x, ts),
                "calibrated_sensor_token": "cs_lidar",
                "timestamp": ts,
                "fileformat": "pcd",
                "is_key_frame": is_key,
                "height": 0,
                "width": 0,
                "filename": filename,
                "prev": f"lidar_{lidar_chain[i - 1][0]}" if i > 0 else "",
                "next": f"lidar_{lidar_chain[i + 1][0]}" if i + 1 < len(lidar_chain) else "",
            }
        )
        if is_key:
            labels = np.array(
                [
                    RAW_INDEX["vehicle.car"],
                    RAW_INDEX["static.manmade"],
                    RAW_INDEX["vehicle.ego"],
                    RAW_INDEX["flat.driveable_surface"],
                ],
                np.uint8,
            )
            lfile = f"lidarseg/{VERSION}/lidar_{name}_lidarseg.bin"
            write_bin(root / lfile, labels)
            t["lidarseg"].append(
                {"token": f"lidar_{name}", "sample_data_token": f"lidar_{name}", "filename": lfile}
            )
    rng = np.random.default_rng(0)
    for s, (sample, x, ts) in enumerate([("sample0", 10.0, 1_000_000), ("sample1", 12.0, 1_500_000)]):
        for c, cam in enumerate(CAMERAS):
            cts = ts + 1000 * c
            filename = f"samples/{cam}/tiny__{cam}__{cts}.jpg"
            (root / filename).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(root / filename)
            t["sample_data"].append(
                {
                    "token": f"{cam}_{s}",
                    "sample_token": sample,
                    "ego_pose_token": ego(f"ego_{cam}_{s}", x + 1.0, cts),
                    "calibrated_sensor_token": f"cs_{cam}",
                    "timestamp": cts,
                    "fileformat": "jpg",
                    "is_key_frame": True,
                    "height": H,
                    "width": W,
                    "filename": filename,
                    "prev": "",
                    "next": "",
                }
            )
    (root / VERSION).mkdir(parents=True)
    for name, records in t.items():
        (root / VERSION / f"{name}.json").write_text(json.dumps(records))
    return root


def edit_table(root: Path, table: str, fn) -> None:
    path = root / VERSION / f"{table}.json"
    path.write_text(json.dumps(fn(json.loads(path.read_text()))))


# ---- geometry --------------------------------------------------------------------------------


def test_quaternion_to_matrix_known_rotations() -> None:
    c = math.cos(math.pi / 4)
    np.testing.assert_allclose(
        quaternion_to_matrix([c, 0, 0, c]), [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12
    )
    np.testing.assert_allclose(quaternion_to_matrix([0, 1, 0, 0]), np.diag([1.0, -1.0, -1.0]), atol=1e-12)
    # Stored quaternions are unit only approximately; the matrix must stay a pure rotation.
    R = quaternion_to_matrix([2 * c, 0, 0, 2 * c])
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(quaternion_to_matrix(Q_FRONT), [[0, 0, 1], [-1, 0, 0], [0, -1, 0]], atol=1e-12)
    with pytest.raises(ValueError, match="zero"):
        quaternion_to_matrix([0, 0, 0, 0])


def test_invert_pose_roundtrip() -> None:
    T = pose_matrix([1.0, -2.0, 3.0], [0.3, 0.1, -0.7, 0.2])
    np.testing.assert_allclose(invert_pose(T) @ T, np.eye(4), atol=1e-12)
    p = np.array([[4.0, 5.0, 6.0]])
    np.testing.assert_allclose(transform_points(invert_pose(T), transform_points(T, p)), p, atol=1e-12)


# ---- tables --------------------------------------------------------------------------------------


def test_scenes_samples_and_chains(tiny: Path) -> None:
    nusc = NuScenes(tiny, VERSION)
    assert nusc.scene_names() == ["scene-0001"]
    assert [s["token"] for s in nusc.scenes()] == ["scene0"]
    assert nusc.sample_tokens("scene0") == ["sample0", "sample1"]
    assert nusc.get("sample", "sample1")["prev"] == "sample0"
    assert nusc.keyframe("sample1", "LIDAR_TOP") == "lidar_key1"
    assert nusc.get("sample_data", "lidar_key1")["prev"] == "lidar_sweep1"
    assert nusc.channel("CAM_BACK_1") == "CAM_BACK"
    assert nusc.scene_by_name("scene-0001")["token"] == "scene0"


def test_load_sample_points_labels_cameras(tiny: Path) -> None:
    nusc = NuScenes(tiny, VERSION)
    s = nusc.load_sample("sample0")
    assert (s.token, s.scene_name, s.lidar_token, s.timestamp) == (
        "sample0",
        "scene-0001",
        "lidar_key0",
        1_000_000,
    )
    assert s.points.dtype == np.float32 and s.points.shape == (4, 5)
    np.testing.assert_array_equal(s.points[:, 3], [10, 20, 30, 40])
    assert s.labels_raw.dtype == np.uint8
    np.testing.assert_array_equal(s.labels, map_raw_labels(s.labels_raw))
    assert s.labels.tolist() == [4, 15, 0, 11]  # car, manmade, ego -> ignore, driveable_surface
    assert [c.name for c in s.cameras] == list(CAMERAS)
    cam = s.cameras[0]
    assert cam.token == "CAM_FRONT_0" and cam.image_path.is_absolute() and (cam.width, cam.height) == (W, H)
    assert cam.intrinsic.dtype == np.float64 and cam.lidar_to_camera.shape == (4, 4)
    assert read_image(cam).shape == (H, W, 3)


def test_lidar_to_camera_compensates_ego_motion(tiny: Path) -> None:
    s = NuScenes(tiny, VERSION).load_sample("sample0")
    uv, depth, visible = project_points(s.points[:, :3].astype(np.float64), s.cameras[0])
    # 20 m ahead of the ego at t_lidar; the camera is mounted 1.5 m forward and the ego moved 1 m
    # by the camera's timestamp: depth 17.5 m (18.5 m without the ego poses), at the principal point.
    assert depth[0] == pytest.approx(17.5, abs=1e-5)
    np.testing.assert_allclose(uv[0], [32.0, 24.0], atol=1e-4)
    assert visible.tolist() == [True, False, False, False]
    uv_all, vis_all = project_all(s.points[:, :3], s.cameras)
    assert uv_all.shape == (6, 4, 2) and vis_all.shape == (6, 4)
    # The point 30 m behind lands in the middle of CAM_BACK (yaw 180 deg) only.
    assert vis_all[:, 1].tolist() == [False, False, False, True, False, False]
    np.testing.assert_allclose(uv_all[3, 1], [32.0, 24.0], atol=1e-4)


def test_project_points_bounds_and_depth() -> None:
    cam = Camera("CAM_FRONT", "t", Path("/x.jpg"), W, H, np.array(K), np.eye(4))  # camera frame = LiDAR frame
    # On-axis, near (0.5 m), behind, on the u=0 edge, on u=W (outside), on u=W-1 (last pixel).
    # Coordinates chosen so that u is exact in binary: u = 50 * x / z + 32.
    xyz = np.array([[0, 0, 10], [0, 0, 0.5], [0, 0, -5], [-32, 0, 50], [32, 0, 50], [31, 0, 50]])
    uv, depth, visible = project_points(xyz, cam)
    np.testing.assert_allclose(uv[0], [32, 24])
    assert uv[3, 0] == 0.0 and uv[4, 0] == 64.0 and uv[5, 0] == 63.0
    assert depth.dtype == np.float32 and uv.dtype == np.float32
    assert visible.tolist() == [True, False, False, True, False, True]
    assert np.isnan(uv[2]).all()  # behind the camera: no pixel
    # IUPC's rule: strictly inside (-1, 1) in normalised coordinates, so both edges are out.
    _, _, vis_iupc = project_points(xyz, cam, bounds="iupc")
    assert vis_iupc.tolist() == [True, False, False, False, False, False]
    np.testing.assert_allclose(normalize_uv(np.array([[0, 0], [W - 1, H - 1]]), W, H), [[-1, -1], [1, 1]])


def test_previous_sweeps_moved_into_key_frame(tiny: Path) -> None:
    nusc = NuScenes(tiny, VERSION)
    one = nusc.previous_sweeps("sample1", n=1)
    # sweep1 (ego at x=11) into key1 (x=12): the point is 1 m further back along ego x, and ego -x
    # is LiDAR +y for this rig (LiDAR yawed +90 deg), so LiDAR points move by (0, +1, 0).
    # Points with |x|<1 and |y|<1 are dropped; (0.5, 3) is kept (only |x| < 1).
    np.testing.assert_allclose(one, [[5, 6, 0, 7, 9], [0.5, 4, 0, 8, 10]], atol=1e-5)
    assert one.dtype == np.float32
    # n=5 stops at the start of the chain: sweep1, key0 (a key frame counts as a sweep), sweep0.
    all_sweeps = nusc.previous_sweeps("sample1", n=5)
    assert len(all_sweeps) == 2 + 3 + 2  # key0 loses its point at (0.2, 0.3)
    np.testing.assert_allclose(all_sweeps[-2:, :3], [[5, 8, 0], [0.5, 6, 0]], atol=1e-5)  # sweep0: x=9
    key0_moved = all_sweeps[2:5]
    np.testing.assert_allclose(key0_moved[0, :3], lidar_from_ego([18.0, 0.0, 1.5]), atol=1e-5)
    assert nusc.previous_sweeps("sample0", n=5).shape == (2, 5)  # only sweep0 precedes key0
    assert nusc.previous_sweeps("sample0", n=0).shape == (0, 5)


def test_scene_table_slice_reads_like_the_whole_set(tiny: Path, tmp_path: Path) -> None:
    from weak3d.stages.preprocess import preprocess_sample

    full = NuScenes(tiny, VERSION)
    for table, records in full.scene_tables("scene-0001").items():
        (tmp_path / f"{table}.json").write_text(json.dumps(records))
    part = NuScenes(tiny, VERSION, table_dir=tmp_path)
    assert part.scene_names() == ["scene-0001"]
    for token in full.sample_tokens("scene0"):
        a, b = preprocess_sample(full, token), preprocess_sample(part, token)
        assert a.keys() == b.keys()
        for key, value in a.items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(value, b[key], err_msg=key)  # NaN uv equal NaN
            else:
                assert value == b[key], key


def test_no_lidarseg_table_means_no_labels(tiny: Path) -> None:
    (tiny / VERSION / "lidarseg.json").unlink()
    s = NuScenes(tiny, VERSION).load_sample("sample1")
    assert s.labels is None and s.labels_raw is None and s.points.shape == (4, 5)


def test_category_order_is_resolved_by_name(tiny: Path) -> None:
    # A dataset whose category.json orders categories differently: labels follow the names.
    def swap(records: list) -> list:
        for r in records:
            if r["name"] == "vehicle.car":
                r["index"] = RAW_INDEX["static.manmade"]
            elif r["name"] == "static.manmade":
                r["index"] = RAW_INDEX["vehicle.car"]
        return records

    edit_table(tiny, "category", swap)
    s = NuScenes(tiny, VERSION).load_sample("sample0")
    assert s.labels.tolist() == [15, 4, 0, 11]


# ---- errors ------------------------------------------------------------------------------------


def test_missing_table_file_is_named(tiny: Path) -> None:
    (tiny / VERSION / "ego_pose.json").unlink()
    with pytest.raises(NuScenesFormatError, match=r"ego_pose\.json.*not found"):
        NuScenes(tiny, VERSION)
    with pytest.raises(NuScenesFormatError, match="v1.0-trainval"):
        NuScenes(tiny, "v1.0-trainval")


def test_missing_record_names_table_field_and_token(tiny: Path) -> None:
    def break_ref(records: list) -> list:
        records[0]["ego_pose_token"] = "no-such-pose"
        return records

    edit_table(tiny, "sample_data", break_ref)
    with pytest.raises(NuScenesFormatError) as err:
        NuScenes(tiny, VERSION)
    msg = str(err.value)
    assert (
        "ego_pose.json" in msg and "no-such-pose" in msg and "lidar_sweep0" in msg and "ego_pose_token" in msg
    )


def test_missing_field_and_unknown_token(tiny: Path) -> None:
    nusc = NuScenes(tiny, VERSION)
    with pytest.raises(NuScenesFormatError, match=r"sample\.json: no sample record 'nope'"):
        nusc.load_sample("nope")
    edit_table(tiny, "sensor", lambda recs: [{k: v for k, v in r.items() if k != "channel"} for r in recs])
    with pytest.raises(NuScenesFormatError, match=r"sensor\.json: sensor 's_lidar' has no field 'channel'"):
        NuScenes(tiny, VERSION)


def test_missing_data_files_are_named(tiny: Path) -> None:
    nusc = NuScenes(tiny, VERSION)
    lidar = tiny / "samples/LIDAR_TOP/tiny__LIDAR_TOP__1500000.pcd.bin"
    lidar.unlink()
    with pytest.raises(NuScenesFormatError, match=f"{lidar}: LiDAR file not found"):
        nusc.load_sample("sample1")
    sweep = tiny / "sweeps/LIDAR_TOP/tiny__LIDAR_TOP__900000.pcd.bin"
    sweep.unlink()
    with pytest.raises(NuScenesFormatError, match=str(sweep)):
        nusc.previous_sweeps("sample0")
    cam = nusc.load_sample("sample0").cameras[2]
    cam.image_path.unlink()
    with pytest.raises(NuScenesFormatError, match=f"{cam.image_path}.*CAM_FRONT_LEFT"):
        read_image(cam)


def test_corrupt_image_and_size_mismatch(tiny: Path) -> None:
    cams = NuScenes(tiny, VERSION).cameras("sample0")
    cams[0].image_path.write_bytes(b"not a jpeg")
    with pytest.raises(NuScenesFormatError, match=f"{cams[0].image_path}: not a readable image"):
        read_image(cams[0])
    Image.new("RGB", (W + 1, H)).save(cams[1].image_path, format="JPEG")
    with pytest.raises(NuScenesFormatError, match=f"{cams[1].image_path}: image is 65x48"):
        read_image(cams[1])


def test_bad_point_files(tmp_path: Path) -> None:
    odd = tmp_path / "odd.pcd.bin"
    odd.write_bytes(np.zeros(21, np.float32).tobytes())  # 84 bytes
    with pytest.raises(NuScenesFormatError, match=f"{odd}: size 84 bytes is not a multiple of 20"):
        read_points(odd)
    nan = tmp_path / "nan.pcd.bin"
    pts = np.ones((3, 5), np.float32)
    pts[1, 2] = np.nan
    pts.tofile(nan)
    with pytest.raises(NuScenesFormatError, match=f"{nan}: 1 of 3 points have NaN.*index 1"):
        read_points(nan)
    pts[1, 2] = np.inf
    pts.tofile(nan)
    with pytest.raises(NuScenesFormatError, match="infinite"):
        read_points(nan)
    pts[1, 2] = 0
    pts[1, 3] = np.nan  # NaN intensity is not a coordinate: accepted
    pts.tofile(nan)
    assert read_points(nan).shape == (3, 5)


def test_lidarseg_length_mismatch(tiny: Path, tmp_path: Path) -> None:
    path = tmp_path / "x_lidarseg.bin"
    np.zeros(7, np.uint8).tofile(path)
    with pytest.raises(NuScenesFormatError, match=f"{path}: 7 labels but the LiDAR sweep has 9 points"):
        read_lidarseg(path, 9)
    assert read_lidarseg(path, 7).shape == (7,)
    # Through the tables: the label file of key0 lost a label.
    label_file = tiny / f"lidarseg/{VERSION}/lidar_key0_lidarseg.bin"
    np.zeros(3, np.uint8).tofile(label_file)
    with pytest.raises(NuScenesFormatError, match=f"{label_file}: 3 labels but the LiDAR sweep has 4 points"):
        NuScenes(tiny, VERSION).load_sample("sample0")


def test_label_value_without_category(tiny: Path) -> None:
    label_file = tiny / f"lidarseg/{VERSION}/lidar_key1_lidarseg.bin"
    np.array([1, 2, 200, 3], np.uint8).tofile(label_file)
    with pytest.raises(NuScenesFormatError, match=f"{label_file}: label values \\[200\\]"):
        NuScenes(tiny, VERSION).load_sample("sample1")


# ---- splits ------------------------------------------------------------------------------------


def test_load_split(tmp_path: Path) -> None:
    mini = load_split(tmp_path, "v1.0-mini")
    assert mini["val"] == ["scene-0103", "scene-0916"] and len(mini["train"]) == 8
    assert "scene-0061" in mini["train"]
    with pytest.raises(NuScenesFormatError, match=str(tmp_path / "weak3d_splits.json")):
        load_split(tmp_path, "v1.0-trainval")
    (tmp_path / "weak3d_splits.json").write_text(json.dumps({"train": ["scene-0001"], "val": ["scene-0002"]}))
    assert load_split(tmp_path, "v1.0-mini") == {"train": ["scene-0001"], "val": ["scene-0002"]}
    explicit = tmp_path / "my_split.json"
    explicit.write_text(json.dumps({"train": ["a"], "val": ["b"], "test": []}))
    assert load_split(tmp_path, "v1.0-trainval", split_file=explicit)["train"] == ["a"]
    with pytest.raises(NuScenesFormatError, match=r"missing\.json: split file not found"):
        load_split(tmp_path, "v1.0-mini", split_file=tmp_path / "missing.json")
    explicit.write_text(json.dumps({"train": ["a"]}))
    with pytest.raises(NuScenesFormatError, match=f"{explicit}: split 'val' missing"):
        load_split(tmp_path, "v1.0-mini", split_file=explicit)


# ---- real files ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real():
    calib_path = REAL / "calibration_scene-0061_sample0.json"
    calib = json.loads(calib_path.read_text())
    cameras = cameras_from_calibration_json(calib_path, REAL)
    points = read_points(REAL / calib["lidar"]["file"])
    return calib, cameras, points


@needs_shared
def test_real_chain_matches_reference_lidar2cam(real) -> None:
    calib, cameras, _ = real
    assert [c.name for c in cameras] == list(CAMERAS)
    for cam in cameras:
        ref = calib["cameras"][cam.name]
        np.testing.assert_allclose(cam.lidar_to_camera, np.array(ref["lidar2cam"]), atol=1e-6, rtol=0)
        np.testing.assert_allclose(cam.intrinsic, np.array(ref["K"]), atol=1e-9)
        np.testing.assert_allclose(cam.lidar_to_image, np.array(ref["lidar2img"]), atol=1e-3, rtol=1e-7)
        assert cam.token == ref["sample_data_token"] and (cam.width, cam.height) == (1600, 900)


@needs_shared
def test_real_visibility_counts(real) -> None:
    _, cameras, points = real
    assert points.shape == (34688, 5) and points.dtype == np.float32
    assert points[:, 4].min() == 0 and points[:, 4].max() == 31
    uv, visible = project_all(points[:, :3], cameras)
    assert int(visible.any(axis=0).sum()) == 20206
    assert visible.sum(axis=1).tolist() == [3067, 3079, 3704, 4826, 4097, 3379]
    assert not visible.any(axis=0)[np.hypot(points[:, 0], points[:, 1]) < 5].any()
    # Every visible uv indexes a real pixel after flooring.
    u, v = uv[..., 0][visible], uv[..., 1][visible]
    assert u.min() >= 0 and u.max() < 1600 and v.min() >= 0 and v.max() < 900
    # IUPC's strict normalised rule drops the points on the first and last pixel row/column.
    _, strict = project_all(points[:, :3], cameras, bounds="iupc")
    assert int(strict.any(axis=0).sum()) == 20184 and not (strict & ~visible).any()


@needs_shared
def test_real_images_and_partial_sweeps(real) -> None:
    _, cameras, _ = real
    image = read_image(cameras[0])
    assert image.shape == (900, 1600, 3) and image.dtype == np.uint8 and image.std() > 10
    partial = REAL / "partial"
    head = read_points(next((partial / "samples/LIDAR_TOP").glob("*.pcd.bin")))
    sweep = read_points(next((partial / "sweeps/LIDAR_TOP").glob("*.pcd.bin")))
    assert head.shape == (100, 5) and sweep.shape == (400, 5)
    for pts in (head, sweep):
        assert np.isfinite(pts).all()
        assert np.array_equal(pts[:, 4], np.round(pts[:, 4])) and pts[:, 4].max() <= 31


# ---- overlay -------------------------------------------------------------------------------------


def test_overlay_points_draws_only_visible_points() -> None:
    image = np.zeros((10, 12, 3), np.uint8)
    uv = np.array([[2.7, 3.2], [9.0, 8.0], [5.0, 5.0]], np.float32)
    colors = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    out = overlay_points(image, uv, np.array([True, True, False]), colors, radius=0)
    assert out[3, 2].tolist() == [255, 0, 0] and out[8, 9].tolist() == [0, 255, 0]
    assert out.sum() == 2 * 255 and image.sum() == 0  # input untouched, hidden point not drawn
    # Near points are drawn last: the nearer of two points on the same pixel wins.
    both = overlay_points(
        image, uv[[0, 0]], np.array([True, True]), colors[:2], radius=1, depth=np.array([2.0, 9.0])
    )
    assert both[3, 2].tolist() == [255, 0, 0] and both[3, 3].tolist() == [255, 0, 0] and both[0, 0].sum() == 0


def test_overlay_cli_synthetic(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "overlays"
    assert overlay_main(["--out", str(out), "--world", str(tiny), "--realdata", str(tmp_path / "none")]) == 0
    assert not (out / "real_CAM_FRONT.png").exists()
    drawn = np.asarray(Image.open(out / "synthetic_CAM_FRONT.png"))
    # The car point of sample0 projects to the principal point of CAM_FRONT, in the car colour.
    assert drawn.shape == (H, W, 3) and drawn[24, 32].tolist() == CLASS_COLORS[4].tolist()


@needs_shared
def test_overlay_cli_real(tmp_path: Path) -> None:
    assert overlay_main(["--out", str(tmp_path)]) == 0
    drawn = np.asarray(Image.open(tmp_path / "real_CAM_FRONT.png"))
    original = np.asarray(Image.open(next(REAL.glob("*__CAM_FRONT__*.jpg"))).convert("RGB"))
    changed = (drawn != original).any(axis=2)
    # 3067 points with radius-2 discs: a few percent of the image, all below the sky.
    assert drawn.shape == (900, 1600, 3) and 0.01 < changed.mean() < 0.2 and not changed[:150].any()
