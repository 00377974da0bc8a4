"""Myocardial fibre orientation (rule-based, LDRB) and ventricular coordinates."""

from ecgcohort.fibers.rule_based import (
    COORDINATE_NAMES,
    FibreAngles,
    FibreError,
    MyocardialFibres,
    load_fibres,
    myocardial_fibres,
    rotational_coordinate,
    save_fibres,
)

__all__ = ["COORDINATE_NAMES", "FibreAngles", "FibreError", "MyocardialFibres", "load_fibres",
           "myocardial_fibres", "rotational_coordinate", "save_fibres"]
