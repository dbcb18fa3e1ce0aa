"""Evaluation: how robust is a model, and can the number be trusted?

    metrics        predict, accuracy, standard_error, batches
    paper          the paper's attack suite (Table 1 columns, CW versions), sweeps (Figs. 1a, 3),
                   transfer (Table 5), the paper's own Tables 1 and 4
    strong         beyond the paper: AutoAttack-style ensembles per threat, the per-image worst case
                   and Union, resumable, with records and provenance
    gradient_free  Square, the flow search and the joint search: members no masked gradient can fool
    diagnostics    the gradient-masking checklist, one noise rule for every check
    reports        RobustnessReport, Markdown tables, provenance
    interop        any PyTorch classifier in the ecosystem's conventions: wrap(model, input_range, mean,
                   std), torchattacks-style Spatial, Joint, APGDSpatial, APGDJoint, load_model_spec

Layers: this package imports the core (warp, threats, attacks, losses, models, data, train) and
nothing of the face (notebooks runner, widgets, explorer, book, sweeps, CLI).
"""

from .diagnostics import HUGE_MAX_STEP_W, MASKING_THRESHOLDS, diagnose, significant, zero_gradients
from .gradient_free import DEFAULT_QUERIES, flow_search, joint_search, square
from .interop import (
    APGDJoint,
    APGDSpatial,
    Joint,
    ModelAdapter,
    Spatial,
    check_eps_x,
    check_logits,
    load_model_spec,
    wrap,
)
from .metrics import (
    accuracy,
    batches,
    difference_text,
    noise_word,
    num_batches,
    paired_difference,
    predict,
    standard_error,
)
from .paper import (
    PAPER_TABLE1,
    PAPER_TABLE3,
    PAPER_TABLE4,
    SUITES,
    TABLE1_COLUMNS,
    attack_suite,
    evaluate,
    evaluate_per_image,
    paper_column,
    sweep,
    transfer,
)
from .reports import UNION_NOTE, Diagnostic, RobustnessReport, markdown_table, provenance, write_json
from .strong import (
    ENSEMBLE_VERSION,
    WORST_COLUMNS,
    PassCounter,
    ensemble_name,
    scaled_budgets,
    strong_evaluate,
    strong_members,
    union_curve,
)

__all__ = [
    "predict", "accuracy", "standard_error", "paired_difference", "noise_word", "difference_text", "batches",
    "num_batches",
    "attack_suite", "evaluate", "evaluate_per_image", "transfer", "sweep", "paper_column", "SUITES",
    "TABLE1_COLUMNS", "PAPER_TABLE1", "PAPER_TABLE3", "PAPER_TABLE4",
    "strong_evaluate", "strong_members", "union_curve", "scaled_budgets",
    "ensemble_name", "ENSEMBLE_VERSION", "PassCounter", "WORST_COLUMNS",
    "square", "flow_search", "joint_search", "DEFAULT_QUERIES",
    "diagnose", "significant", "zero_gradients", "MASKING_THRESHOLDS", "HUGE_MAX_STEP_W",
    "Diagnostic", "RobustnessReport", "UNION_NOTE", "markdown_table", "provenance", "write_json",
    "wrap", "ModelAdapter", "check_logits", "check_eps_x", "load_model_spec", "Spatial", "Joint",
    "APGDSpatial", "APGDJoint",
]
