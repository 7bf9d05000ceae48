# Evaluation of every run on the validation split, and the summary tables.


rule evaluate:
    input:
        scenes=per_scene("results/{ds}/preprocessed/{scene}.h5", "val"),
        split="results/{ds}/scenes.json",
        raw=raw_input,
        model="results/{ds}/{run}/model.pt",
        code=TRAIN_CODE,
    output:
        "results/{ds}/{run}.miou",
    log:
        "logs/{ds}/eval/{run}.log",
    benchmark:
        "benchmarks/{ds}/eval/{run}.tsv"
    params:
        settings=stage_params("eval"),
        device=device(),
        root=lambda wc: raw_root(wc.ds),
    threads: 2
    resources:
        gpu=gpus(),
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/evaluate.py"


rule summary:
    input:
        stats="results/{ds}/weak_labels/stats.json",
        miou=expand("results/{{ds}}/{run}.miou", run=RUNS),
        ablation=expand("results/{{ds}}/{run}.miou", run=ABLATION_RUNS),
        pseudo=expand("results/{{ds}}/iter{k}/pseudo", k=range(1, N_ITERATIONS + 1)),
        logs=expand("results/{{ds}}/{run}/train_log.json", run=RUNS),
        code=code_files("weak3d/summary.py"),
    output:
        "results/{ds}/summary.md",
    log:
        "logs/{ds}/summary.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/summary.py"
