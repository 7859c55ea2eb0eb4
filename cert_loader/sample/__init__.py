"""A realistic sample district (CERT DDL plus matching parquet and graph files) for the README demo and the tests."""

from cert_loader.sample.generate import generate_district
from cert_loader.sample.schema import SAMPLE_STORES, apply_schema, load_ddl

__all__ = ["SAMPLE_STORES", "apply_schema", "generate_district", "load_ddl"]
