"""The reference lookup adaptor: seeded datasets, fault profiles, a Starlette app, a server."""

from linker.adaptor.app import create_app
from linker.adaptor.datasets import (
    DATASET_NAMES,
    DEFAULT_SIZE,
    Dataset,
    Person,
    PhoneEntry,
    Record,
    build_dataset,
    load_dataset,
    people,
    population_size,
)
from linker.adaptor.faults import FAULTS, Fault, FaultPlan, fault_help, parse_fault
from linker.adaptor.server import DEFAULT_PORTS, BackgroundServer, serve

__all__ = [
    "DATASET_NAMES",
    "DEFAULT_PORTS",
    "DEFAULT_SIZE",
    "FAULTS",
    "BackgroundServer",
    "Dataset",
    "Fault",
    "FaultPlan",
    "Person",
    "PhoneEntry",
    "Record",
    "build_dataset",
    "create_app",
    "fault_help",
    "load_dataset",
    "parse_fault",
    "people",
    "population_size",
    "serve",
]
