"""ECG realism: delineation of the simulated beats (spatial velocity for the QRS, ECGdeli for
the T wave), their features, the clinical criteria they are judged by (sex-specific thresholds by
the patient's sex), the cohort's pass rates, its healthy beats by sex against published
populations and the figures (clinical 12-lead printouts, feature distributions against healthy
ranges, the cohort against the populations)."""

from ecgcohort.lazy import lazy_exports

_DELINEATION = "ecgcohort.realism.delineation"
_FEATURES = "ecgcohort.realism.features"
_CRITERIA = "ecgcohort.realism.criteria"
_SUMMARY = "ecgcohort.realism.summary"
_FIGURES = "ecgcohort.realism.figures"
_POPULATION = "ecgcohort.realism.population"
_JOBS = "ecgcohort.realism.jobs"
_EXPORTS = {
    "Delineation": _DELINEATION, "DelineationError": _DELINEATION, "DelineationSettings": _DELINEATION,
    "delineate": _DELINEATION, "spatial_velocity": _DELINEATION, "tiled_record": _DELINEATION,
    "FeatureSettings": _FEATURES, "beat_features": _FEATURES, "frontal_axis_deg": _FEATURES,
    "CRITERIA": _CRITERIA, "CRITERIA_SETS": _CRITERIA, "Criterion": _CRITERIA, "criteria_of": _CRITERIA,
    "evaluate_row": _CRITERIA,
    "evaluate_cohort": _SUMMARY, "markdown_summary": _SUMMARY, "pass_rates": _SUMMARY,
    "compare_with_population": _POPULATION, "load_norms": _POPULATION, "population_markdown": _POPULATION,
    "plot_clinical_ecg": _FIGURES, "plot_feature_distributions": _FIGURES, "plot_population": _FIGURES,
    "beat_row": _JOBS, "delineate_patient_job": _JOBS, "read_beat": _JOBS, "realism_summary_job": _JOBS,
    "read_sex_and_age": _JOBS,
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
