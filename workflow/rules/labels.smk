# Sparse label generation: one click per class per segment, propagated labels, candidate sets.


rule weak_labels:
    input:
        scene="results/{ds}/preprocessed/{scene}.h5",
        presegment="results/{ds}/presegment/{scene}.h5",
        code=code_files("weak3d/stages/weak_labels.py", "weak3d/config.py", "weak3d/io.py"),
    output:
        "results/{ds}/weak_labels/{scene}.h5",
    log:
        "logs/{ds}/weak_labels/{scene}.log",
    params:
        settings=stage_params("weak_labels", seeded=True),
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/weak_labels.py"


rule label_stats:
    input:
        scenes=per_scene("results/{ds}/preprocessed/{scene}.h5", "train"),
        labels=per_scene("results/{ds}/weak_labels/{scene}.h5", "train"),
        code=code_files("weak3d/stages/weak_labels.py"),
    output:
        "results/{ds}/weak_labels/stats.json",
    log:
        "logs/{ds}/label_stats.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/label_stats.py"
