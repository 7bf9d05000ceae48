# Data stages: raw dataset -> scenes -> per-scene preprocess, pre-segmentation and superpixels.


rule raw_dataset:
    input:
        code=code_files("weak3d/world", "weak3d/download.py", "weak3d/config.py", "weak3d/io.py"),
    output:
        directory("resources/{ds}/raw"),
    log:
        "logs/{ds}/raw_dataset.log",
    benchmark:
        "benchmarks/{ds}/raw_dataset.tsv"
    params:
        source=lambda wc: ds_cfg(wc.ds)["source"],
        version=lambda wc: ds_cfg(wc.ds)["version"],
        world=lambda wc: canonical(ds_cfg(wc.ds).get("world", {})),
        download=lambda wc: canonical(ds_cfg(wc.ds).get("download", {})),
    threads: 2
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/raw_dataset.py"


checkpoint scenes:
    input:
        raw=raw_input,
        code=code_files("weak3d/datasets"),
    output:
        scenes="results/{ds}/scenes.json",
        # One table slice per scene: per-scene jobs must not load all of trainval's tables.
        tables=directory("results/{ds}/tables"),
    log:
        "logs/{ds}/scenes.log",
    params:
        root=lambda wc: raw_root(wc.ds),
        version=lambda wc: ds_cfg(wc.ds)["version"],
        split_file=lambda wc: ds_cfg(wc.ds).get("split_file") or "",
        max_scenes=lambda wc: ds_cfg(wc.ds).get("max_scenes") or 0,
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/scenes.py"


rule preprocess:
    input:
        scenes="results/{ds}/scenes.json",
        tables="results/{ds}/tables",
        raw=raw_input,
        code=code_files("weak3d/datasets", "weak3d/stages/preprocess.py", "weak3d/io.py"),
    output:
        "results/{ds}/preprocessed/{scene}.h5",
    log:
        "logs/{ds}/preprocess/{scene}.log",
    params:
        root=lambda wc: raw_root(wc.ds),
        version=lambda wc: ds_cfg(wc.ds)["version"],
        settings=stage_params("preprocess"),
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/preprocess.py"


rule presegment:
    input:
        scene="results/{ds}/preprocessed/{scene}.h5",
        code=code_files(
            "weak3d/stages/presegment.py",
            "weak3d/stages/hdbscan_mst.py",
            "weak3d/stages/hdbscan_select.py",
            "weak3d/stages/ransac_numba.py",
            "weak3d/config.py",
            "weak3d/io.py",
        ),
    output:
        "results/{ds}/presegment/{scene}.h5",
    log:
        "logs/{ds}/presegment/{scene}.log",
    params:
        settings=stage_params("presegment", seeded=True),
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/presegment.py"


rule superpixels:
    input:
        scene="results/{ds}/preprocessed/{scene}.h5",
        raw=raw_input,
        code=code_files(
            "weak3d/stages/superpixels.py",
            "weak3d/stages/seeds_numba.py",
            "weak3d/config.py",
            "weak3d/io.py",
        ),
    output:
        "results/{ds}/superpixels/{scene}.h5",
    log:
        "logs/{ds}/superpixels/{scene}.log",
    params:
        root=lambda wc: raw_root(wc.ds),
        settings=stage_params("superpixels"),
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/superpixels.py"
