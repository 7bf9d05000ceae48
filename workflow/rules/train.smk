# Training: pretrain (iteration 0) -> E-step -> M-step (iteration k) ..., and the full-label bound.

rule pretrain:
    input:
        unpack(training_data),
        split="results/{ds}/scenes.json",
        raw=raw_input,
        code=TRAIN_CODE,
    output:
        model="results/{ds}/iter0/model.pt",
        log="results/{ds}/iter0/train_log.json",
    log:
        "logs/{ds}/train/iter0.log",
    benchmark:
        "benchmarks/{ds}/train/iter0.tsv"
    params:
        mode="pretrain",
        settings=stage_params("train", seeded=True),
        device=device(),
        root=lambda wc: raw_root(wc.ds),
    threads: 2
    resources:
        gpu=gpus(),
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/train.py"


rule estep:
    input:
        unpack(training_data),
        split="results/{ds}/scenes.json",
        raw=raw_input,
        model=previous_model,
        previous=previous_pseudo,
        code=TRAIN_CODE + code_files("weak3d/estep.py"),
    output:
        directory("results/{ds}/iter{k}/pseudo"),
    log:
        "logs/{ds}/estep/iter{k}.log",
    benchmark:
        "benchmarks/{ds}/estep/iter{k}.tsv"
    params:
        iteration=lambda wc: int(wc.k),
        settings=stage_params("estep", seeded=True),
        device=device(),
        root=lambda wc: raw_root(wc.ds),
    threads: 2
    resources:
        gpu=gpus(),
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/estep.py"


rule mstep:
    input:
        unpack(training_data),
        split="results/{ds}/scenes.json",
        raw=raw_input,
        pseudo="results/{ds}/iter{k}/pseudo",
        code=TRAIN_CODE,
    output:
        model="results/{ds}/iter{k}/model.pt",
        log="results/{ds}/iter{k}/train_log.json",
    log:
        "logs/{ds}/train/iter{k}.log",
    benchmark:
        "benchmarks/{ds}/train/iter{k}.tsv"
    params:
        mode="mstep",
        settings=stage_params("train", seeded=True),
        device=device(),
        root=lambda wc: raw_root(wc.ds),
    threads: 2
    resources:
        gpu=gpus(),
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/train.py"


rule full:
    input:
        unpack(training_data),
        split="results/{ds}/scenes.json",
        raw=raw_input,
        code=TRAIN_CODE,
    output:
        model="results/{ds}/full/model.pt",
        log="results/{ds}/full/train_log.json",
    log:
        "logs/{ds}/train/full.log",
    benchmark:
        "benchmarks/{ds}/train/full.tsv"
    params:
        mode="full",
        settings=stage_params("train", seeded=True),
        device=device(),
        root=lambda wc: raw_root(wc.ds),
    threads: 2
    resources:
        gpu=gpus(),
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/train.py"


# Ablation: iteration 0 without the association loss, same seed and settings otherwise.
rule pretrain_noassoc:
    input:
        unpack(training_data),
        split="results/{ds}/scenes.json",
        raw=raw_input,
        code=TRAIN_CODE,
    output:
        model="results/{ds}/iter0_noassoc/model.pt",
        log="results/{ds}/iter0_noassoc/train_log.json",
    log:
        "logs/{ds}/train/iter0_noassoc.log",
    benchmark:
        "benchmarks/{ds}/train/iter0_noassoc.tsv"
    params:
        mode="pretrain",
        settings=stage_params("train", seeded=True, association=False),
        device=device(),
        root=lambda wc: raw_root(wc.ds),
    threads: 2
    resources:
        gpu=gpus(),
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/train.py"
