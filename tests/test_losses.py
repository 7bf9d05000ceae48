"""Loss functions on hand-made inputs with values computed by hand (or by a simple,
independently written formula)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from weak3d.losses import (
    IUPCLossConfig,
    association_losses,
    candidate_bits,
    candidate_set_loss,
    ce_lovasz,
    erda_loss,
    erda_pseudo_probs,
    iupc_total_loss,
    lovasz_softmax,
    update_prototypes_ema,
)

# Two labelled points, classes 0 (ignore), 1, 2.
TWO_POINT_PROBS = [[0.1, 0.8, 0.1], [0.2, 0.3, 0.5]]
TWO_POINT_LABELS = [1, 2]
# Hand computation, with Delta(S) = 1 - |gt \ S| / |gt u S| on the mispredicted set S:
#   class 1: gt = {A}; errors A 0.2, B 0.3 -> order B, A; Delta({B}) = 1/2, Delta({A, B}) = 1
#            loss = 0.3 * 1/2 + 0.2 * (1 - 1/2) = 0.25
#   class 2: gt = {B}; errors A 0.1, B 0.5 -> order B, A; Delta({B}) = 1, Delta({A, B}) = 1
#            loss = 0.5 * 1 + 0.1 * 0 = 0.5
TWO_POINT_LOVASZ = (0.25 + 0.5) / 2


def _t(x, dtype=torch.float64) -> torch.Tensor:
    return torch.tensor(x, dtype=dtype)


# --- Lovasz-softmax ---------------------------------------------------------------------------


def test_lovasz_perfect_prediction_is_zero():
    probs = _t([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    assert lovasz_softmax(probs, _t([1, 2, 1], torch.long)).item() == 0.0


def test_lovasz_two_points_by_hand():
    loss = lovasz_softmax(_t(TWO_POINT_PROBS), _t(TWO_POINT_LABELS, torch.long))
    assert loss.item() == pytest.approx(TWO_POINT_LOVASZ, abs=1e-12)


def test_lovasz_ignores_points_labelled_zero():
    probs = _t(TWO_POINT_PROBS + [[0.0, 0.0, 1.0]])
    loss = lovasz_softmax(probs, _t(TWO_POINT_LABELS + [0], torch.long))
    assert loss.item() == pytest.approx(TWO_POINT_LOVASZ, abs=1e-12)


def _lovasz_threshold_form(probs: np.ndarray, labels: np.ndarray, classes: list[int]) -> float:
    """Lovasz extension as sum over error levels t_1 > t_2 > ... of (t_k - t_{k+1}) Delta({m >= t_k})."""
    values = []
    for c in classes:
        gt = labels == c
        m = np.abs(gt.astype(float) - probs[:, c])
        levels = np.unique(m)[::-1]
        total = 0.0
        for k, level in enumerate(levels):
            nxt = levels[k + 1] if k + 1 < len(levels) else 0.0
            s = m >= level
            union = (gt | s).sum()
            delta = 1.0 - (gt & ~s).sum() / union if union else 0.0
            total += (level - nxt) * delta
        values.append(total)
    return float(np.mean(values))


@pytest.mark.parametrize("classes", ["present", "all"])
def test_lovasz_matches_threshold_form(classes):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(40, 5)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = rng.choice([1, 2, 4], size=40)  # class 3 absent: matters for "all"
    expected_classes = [1, 2, 4] if classes == "present" else [1, 2, 3, 4]
    expected = _lovasz_threshold_form(probs, labels, expected_classes)
    loss = lovasz_softmax(_t(probs), _t(labels, torch.long), classes=classes)
    assert loss.item() == pytest.approx(expected, abs=1e-10)


def test_lovasz_gradient_is_finite_and_nonzero():
    probs = _t(TWO_POINT_PROBS).requires_grad_()
    lovasz_softmax(probs, _t(TWO_POINT_LABELS, torch.long)).backward()
    # d/dp of |fg - p| weighted by the Lovasz gradient; class 2, point B: -1 * 1 / 2 classes.
    assert probs.grad[1, 2].item() == pytest.approx(-0.5)
    assert torch.isfinite(probs.grad).all()


# --- CE + Lovasz ------------------------------------------------------------------------------


def test_ce_lovasz_by_hand():
    logits = torch.log(_t(TWO_POINT_PROBS))  # softmax(log p) = p
    ce = -(math.log(0.8) + math.log(0.5)) / 2
    loss = ce_lovasz(logits, _t(TWO_POINT_LABELS, torch.long))
    assert loss.item() == pytest.approx(ce + TWO_POINT_LOVASZ, abs=1e-12)


def test_ce_lovasz_without_labels_is_zero_with_graph():
    logits = torch.randn(4, 3, requires_grad=True)
    loss = ce_lovasz(logits, torch.zeros(4, dtype=torch.long))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros(4, 3))
    assert lovasz_softmax(torch.rand(0, 3), torch.zeros(0, dtype=torch.long)).item() == 0.0


# --- candidate sets ---------------------------------------------------------------------------


def test_candidate_bits_decodes_uint32():
    bits = candidate_bits(np.array([0b0110, 0, 0b1001], dtype=np.uint32), 4)
    assert bits.tolist() == [[False, True, True, False], [False] * 4, [True, False, False, True]]
    with pytest.raises(ValueError, match="at or above class 4"):
        candidate_bits(np.array([1 << 4], dtype=np.uint32), 4)


def test_candidate_set_loss_by_hand():
    probs = _t([[0.1, 0.2, 0.3, 0.4], [0.25, 0.25, 0.25, 0.25], [0.05, 0.9, 0.04, 0.01]])
    # point 0: set {1, 2} -> allowed {0, 1, 2} = 0.6; point 1: no set, skipped;
    # point 2: set {3} -> allowed {0, 3} = 0.06.
    masks = np.array([0b0110, 0, 0b1000], dtype=np.uint32)
    loss = candidate_set_loss(torch.log(probs), masks)
    assert loss.item() == pytest.approx((-math.log(0.6) - math.log(0.06)) / 2, abs=1e-12)
    # int64 torch masks give the same; a set that names class 0 changes nothing (0 always allowed).
    same = candidate_set_loss(torch.log(probs), torch.tensor([0b0111, 0, 0b1001]))
    assert same.item() == pytest.approx(loss.item(), abs=1e-12)


def test_candidate_set_loss_clamps_and_handles_empty():
    logits = torch.tensor([[0.0, 40.0, 0.0, 0.0]], requires_grad=True)  # allowed {0, 3}: ~1e-17
    loss = candidate_set_loss(logits, torch.tensor([0b1000]))
    assert loss.item() == pytest.approx(-math.log(1e-7), rel=1e-6)
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros(1, 4))  # clamped: no gradient, as in the seed
    empty = candidate_set_loss(torch.randn(3, 4, requires_grad=True), torch.zeros(3, dtype=torch.long))
    assert empty.item() == 0.0 and empty.requires_grad


# --- association ------------------------------------------------------------------------------


def _sigma(a: float, temperature: float) -> float:
    """Softmax weight of the matching 2D point when S = diag(a / temperature) (2 x 2)."""
    s = a / temperature
    return math.exp(s) / (math.exp(s) + 1.0)


def test_association_two_by_two_identity():
    a, tau = 1.0, 0.5
    e3d, e2d = _t([[a, 0.0], [0.0, a]]), _t([[1.0, 0.0], [0.0, 1.0]])
    walker, visit = association_losses(e3d, _t([1, 2], torch.long), e2d, tau)
    s = _sigma(a, tau)
    # P_vp = P_pv = [[s, 1-s], [1-s, s]]; round trip diagonal q = s^2 + (1-s)^2; T = I.
    q = s**2 + (1 - s) ** 2
    assert walker.item() == pytest.approx(-math.log(q + 1e-10), abs=1e-9)
    assert visit.item() == pytest.approx(0.0, abs=1e-9)  # both 2D points visited equally

    # Same class for both points: T = 1/2 everywhere; KL = 1/2 log(1/2 / q) + 1/2 log(1/2 / (1-q)).
    walker_same, _ = association_losses(e3d, _t([3, 3], torch.long), e2d, tau)
    expected = 0.5 * math.log(0.5 / q) + 0.5 * math.log(0.5 / (1 - q))
    assert walker_same.item() == pytest.approx(expected, abs=1e-9)


def test_association_visit_when_one_target_dominates():
    a, tau = 2.0, 1.0
    e3d, e2d = _t([[a, 0.0], [a, 0.0]]), _t([[1.0, 0.0], [0.0, 1.0]])
    _, visit = association_losses(e3d, _t([1, 2], torch.long), e2d, tau)
    s = _sigma(a, tau)  # both rows of P_vp are [s, 1-s]
    expected = 0.5 * math.log(0.5 / s) + 0.5 * math.log(0.5 / (1 - s))
    assert visit.item() == pytest.approx(expected, abs=1e-9)


def test_association_matches_numpy_formula():
    rng = np.random.default_rng(1)
    e3d, e2d, y = rng.normal(size=(5, 3)), rng.normal(size=(4, 3)), np.array([1, 1, 2, 3, 2])
    walker, visit = association_losses(_t(e3d), _t(y, torch.long), _t(e2d), 0.5)

    def softmax(x):
        e = np.exp(x - x.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    s = e3d @ e2d.T / 0.5
    p_vpv = softmax(s) @ softmax(s.T)
    t = (y[:, None] == y[None, :]).astype(float)
    t /= t.sum(1, keepdims=True)
    kl = np.where(t > 0, t * (np.log(np.where(t > 0, t, 1)) - np.log(p_vpv + 1e-10)), 0).sum() / 5
    v = softmax(s).mean(0)
    assert walker.item() == pytest.approx(kl, abs=1e-9)
    assert visit.item() == pytest.approx(float((0.25 * np.log(0.25 / (v + 1e-10))).sum()), abs=1e-9)


def test_association_empty_and_gradients():
    e3d = torch.randn(0, 4, requires_grad=True)
    e2d = torch.randn(3, 4, requires_grad=True)
    walker, visit = association_losses(e3d, torch.zeros(0, dtype=torch.long), e2d, 0.5)
    assert walker.item() == 0.0 and visit.item() == 0.0
    (walker + visit).backward()
    assert torch.equal(e2d.grad, torch.zeros(3, 4))

    e3d = torch.randn(3, 4, requires_grad=True)
    walker, visit = association_losses(e3d, torch.tensor([1, 2, 1]), e2d, 0.5)
    (walker + visit).backward()
    assert torch.isfinite(e3d.grad).all() and e3d.grad.abs().sum() > 0
    assert torch.isfinite(e2d.grad).all() and e2d.grad.abs().sum() > 0


# --- IUPC total -------------------------------------------------------------------------------


def _iupc_batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    n, c = 12, 17
    batch = {
        "logits_3d": torch.randn(n, c, generator=g, requires_grad=True),
        "logits_2d": torch.randn(n, c, generator=g, requires_grad=True),
        "emb_3d": torch.randn(n, 8, generator=g, requires_grad=True),
        "emb_2d": torch.randn(n, 8, generator=g, requires_grad=True),
        "sparse": torch.tensor([4, 0, 0, 11, 0, 0, 0, 4, 0, 0, 0, 0]),
        "propagated": torch.tensor([0, 4, 4, 16, 0, 0, 0, 0, 0, 0, 0, 0]),
        "candidates": np.array(
            [0, 0, 0, 0, (1 << 4) | (1 << 11), (1 << 4) | (1 << 11), 0, 0, 0, 0, 0, 0], dtype=np.uint32
        ),
        "assoc_target": torch.tensor([1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0]),
    }
    return batch


def test_iupc_total_combines_terms_with_seed_weights():
    b = _iupc_batch()
    total, terms = iupc_total_loss(**b, config=IUPCLossConfig.pretrain())
    # pp uses prop labels overwritten by the clicks: point 3 is 11 (sparse), not 16; point 0 is 4.
    merged = torch.tensor([4, 4, 4, 11, 0, 0, 0, 4, 0, 0, 0, 0])
    assert terms["pp_vox"].item() == pytest.approx(ce_lovasz(b["logits_3d"], merged).item(), rel=1e-6)
    walker, visit = association_losses(
        b["emb_3d"][[0, 3, 7]], torch.tensor([4, 11, 4]), b["emb_2d"][[0, 1, 2, 3, 7]], 0.5
    )
    assert terms["walker"].item() == pytest.approx(walker.item(), rel=1e-6)
    expected = (
        terms["sp_vox"]
        + terms["pp_vox"]
        + terms["sp_pix"]
        + terms["pp_pix"]
        + terms["neg_vox"]
        + terms["neg_pix"]
        + 0.5 * (terms["walker"] + 0.5 * terms["visit"])
    )
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert "pl_vox" not in terms

    total.backward()
    for name in ("logits_3d", "logits_2d", "emb_3d", "emb_2d"):
        grad = b[name].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_iupc_total_mstep_adds_pseudo_and_uses_temperature_one():
    b = _iupc_batch(1)
    pseudo = torch.tensor([4, 0, 0, 11, 4, 11, 0, 4, 0, 0, 0, 0])
    total, terms = iupc_total_loss(**b, pseudo=pseudo, config=IUPCLossConfig.mstep())
    walker, visit = association_losses(
        b["emb_3d"][[0, 3, 7]], torch.tensor([4, 11, 4]), b["emb_2d"][[0, 1, 2, 3, 7]], 1.0
    )
    assert terms["visit"].item() == pytest.approx(visit.item(), rel=1e-6)
    assert terms["pl_pix"].item() == pytest.approx(ce_lovasz(b["logits_2d"], pseudo).item(), rel=1e-6)
    seg = sum(terms[f"{k}_{br}"] for k in ("sp", "pp", "pl") for br in ("vox", "pix"))
    expected = seg + terms["neg_vox"] + terms["neg_pix"] + 0.5 * (walker + 0.5 * visit)
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)


def test_iupc_total_3d_only():
    b = _iupc_batch()
    total, terms = iupc_total_loss(b["logits_3d"], b["sparse"], b["propagated"], b["candidates"])
    assert set(terms) == {"sp_vox", "pp_vox", "neg_vox"}
    assert total.item() == pytest.approx(sum(terms.values()).item(), rel=1e-6)


# --- ERDA -------------------------------------------------------------------------------------


def test_erda_loss_by_hand():
    protos = _t([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # row 0 = ignore class, excluded
    proj = _t([[2.0, 0.0]])  # cos = (-, 1, 0)
    logits = torch.log(_t([[0.2, 0.5, 0.3]]))
    e = math.e
    p1, p2 = e / (e + 1), 1 / (e + 1)
    assert erda_pseudo_probs(proj, protos).tolist()[0] == pytest.approx([0.0, p1, p2])
    expected = -(p1 * math.log(0.5) + p2 * math.log(0.3))
    assert erda_loss(logits, proj, protos).item() == pytest.approx(expected, abs=1e-12)
    # Only unlabelled points count.
    two = erda_loss(
        torch.cat([logits, logits * 0]), torch.cat([proj, proj]), protos, torch.tensor([True, False])
    )
    assert two.item() == pytest.approx(expected, abs=1e-12)


def test_erda_gradient_reaches_projection_unless_detached():
    protos = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    logits = torch.tensor([[0.0, 1.0, -1.0]], requires_grad=True)
    proj = torch.tensor([[1.0, 1.0]], requires_grad=True)
    erda_loss(logits, proj, protos).backward()
    assert proj.grad.abs().sum() > 0 and protos.grad is None  # co-adaptation; prototypes are a buffer
    proj.grad = None
    erda_loss(logits, proj, protos, detach_pseudo=True).backward()
    assert proj.grad is None


def test_update_prototypes_ema():
    protos = _t([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    proj = _t([[3.0, 1.0], [5.0, 3.0], [9.0, 9.0]])
    new = update_prototypes_ema(protos, proj, torch.tensor([1, 1, 0]), momentum=0.9)
    # class 1: 0.9 * (1, 1) + 0.1 * (4, 2); class 2 absent: unchanged; class 0 (ignore) unchanged.
    assert new.flatten().tolist() == pytest.approx([0.0, 0.0, 1.3, 1.1, 2.0, 2.0])
