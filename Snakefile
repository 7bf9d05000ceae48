# weak3d: label-efficient 3D semantic segmentation, one DAG per dataset {ds}.
#
# Output-path scheme (all under results/{ds}/ unless noted; see README "Outputs"):
#   resources/{ds}/raw/                     raw dataset in nuScenes layout (synthesized or downloaded)
#   results/{ds}/scenes.json                scenes, samples and the train/val split (checkpoint)
#   results/{ds}/preprocessed/{scene}.h5    points, labels, camera uv + visibility, previous sweeps
#   results/{ds}/presegment/{scene}.h5      ground mask and segment id per point
#   results/{ds}/superpixels/{scene}.h5     SEEDS label map per camera image (train scenes)
#   results/{ds}/weak_labels/{scene}.h5     clicks, propagated labels, candidate sets (train scenes)
#   results/{ds}/weak_labels/stats.json     label statistics
#   results/{ds}/iter0/                     pretrained model (iteration 0)
#   results/{ds}/iter{k}/pseudo/            E-step pseudo-labels from the iter{k-1} model
#   results/{ds}/iter{k}/                   M-step model trained on them
#   results/{ds}/full/                      fully supervised upper bound
#   results/{ds}/iter0_noassoc/             ablation: iteration 0 without the association loss
#                                           (optional: ablations.association: true)
#   results/{ds}/{run}.miou                 evaluation (JSON)
#   results/{ds}/summary.md                 label statistics and mIoU tables
#   logs/{ds}/...  benchmarks/{ds}/...      one log per job, benchmarks of heavy jobs

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "config/schema.yaml")


wildcard_constraints:
    ds="|".join(config["datasets"]),
    scene=r"[A-Za-z0-9_.\-]+",
    k=r"[1-9][0-9]*",
    run=r"iter[0-9]+|full|iter0_noassoc",


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/labels.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/eval.smk"


rule all:
    default_target: True
    input:
        all_targets(),
