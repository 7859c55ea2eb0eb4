"""The `hcp1` (health clinics) and `hcp2` (related services) sample tables, drawn from the same students as `ids`."""

from __future__ import annotations

import datetime as dt
import uuid

import polars as pl
import pyarrow as pa

from cert_loader.sample import pools
from cert_loader.sample.rng import Rng, decimal_text, null_where, repeat_rows, zero_padded

INT, STR, DATE, BOOL, F64 = pa.int64(), pa.string(), pa.date32(), pa.bool_(), pa.float64()
TSTZ, TS = pa.timestamp("us", tz="UTC"), pa.timestamp("us")

HCP1_TYPES: dict[str, dict[str, pa.DataType]] = {
    "clinic": {"district_id": STR, "clinic_id": INT, "name": STR, "school_id": INT, "phone": STR, "open_hours": STR},
    "patient": {"district_id": STR, "patient_id": INT, "student_id": INT, "clinic_id": INT, "primary_language": STR,
                "allergies": STR, "consent_on_file": BOOL, "registered_on": DATE},
    "visit": {"district_id": STR, "visit_id": INT, "patient_id": INT, "clinic_id": INT, "visit_at": TSTZ,
              "reason": STR, "temperature_f": F64, "duration_minutes": INT, "notes": STR},
    "immunization": {"district_id": STR, "patient_id": INT, "vaccine_code": STR, "dose_number": INT,
                     "administered_on": DATE, "lot_number": STR},
    "screening": {"district_id": STR, "screening_id": INT, "patient_id": INT, "screening_type": STR, "result": STR,
                  "bmi": F64, "passed": BOOL, "screened_on": DATE},
}
HCP2_TYPES: dict[str, dict[str, pa.DataType]] = {
    "provider": {"district_id": STR, "provider_id": INT, "name": STR, "specialty": STR, "license_number": STR,
                 "hourly_rate": pa.decimal128(8, 2)},
    "provider_credential": {"district_id": STR, "provider_id": INT, "credential_code": STR, "issued_on": DATE,
                            "expires_on": DATE},
    "service_plan": {"plan_uuid": STR, "district_id": STR, "student_id": INT, "provider_id": INT, "plan_type": STR,
                     "start_date": DATE, "end_date": DATE, "goals": STR},
    "service_session": {"district_id": STR, "session_id": INT, "plan_uuid": STR, "session_at": TS, "minutes": INT,
                        "attended": BOOL, "notes": STR},
    "referral": {"district_id": STR, "referral_id": INT, "student_id": INT, "provider_id": INT, "referred_at": TSTZ,
                 "reason": STR, "urgent": BOOL},
}

_NAMESPACE = uuid.UUID("6f1c8a52-3d0e-5b7a-9c41-2e8f0d6b7a13")


def _subset(rng: Rng, frame: pl.DataFrame, p: float) -> pl.DataFrame:
    """A random share ``p`` of the rows, always at least the first one (tiny districts still fill every table)."""
    keep = rng.chance(frame.height, p) | (pl.int_range(0, frame.height, eager=True) == 0)
    return frame.filter(keep)


def _hcp1(seed: int, student: pl.DataFrame, school: pl.DataFrame) -> dict[str, pl.DataFrame]:
    rng = Rng(seed, "hcp1.clinic")
    s = school.height
    clinic = school.select(clinic_id="school_id", school_id="school_id").with_columns(
        name="Health Office — " + school["name"],
        phone=null_where("555-" + zero_padded(rng.ints(s, 0, 9999), 4), rng.chance(s, 0.3)),
        open_hours=null_where(rng.choice(s, pools.OPEN_HOURS_JSON), rng.chance(s, 0.3)),
    )

    rng = Rng(seed, "hcp1.patient")
    chosen = _subset(rng, student.select("student_id", "school_id"), 0.6)
    p = chosen.height
    patient = chosen.select(
        patient_id=pl.int_range(1, p + 1), student_id="student_id", clinic_id="school_id",
        primary_language=pl.lit(rng.choice(p, pools.LANGUAGES)),
        allergies=pl.lit(rng.choice(p, pools.ALLERGIES_JSON)),
        consent_on_file=pl.lit(rng.chance(p, 0.9)),
        registered_on=pl.lit(rng.dates(p, dt.date(2019, 8, 1), 5 * 365)),
    )

    rng = Rng(seed, "hcp1.visit")
    rows = repeat_rows(patient.select("patient_id", "clinic_id"), rng.ints(p, 0, 3))
    m = rows.height
    # float64 for a numeric(4,1) column; parsed from text so 98.6 is the nearest double (polars' / 10 is not exact)
    temperature = decimal_text(pl.lit(rng.ints(m, 970, 1015)), 1).cast(pl.Float64)
    visit = rows.select(
        visit_id=pl.int_range(1, m + 1), patient_id="patient_id", clinic_id="clinic_id",
        visit_at=pl.lit(rng.timestamps(m, dt.date(2024, 8, 19), 280)),
        reason=pl.lit(rng.choice(m, pools.VISIT_REASONS)),
        temperature_f=null_where(temperature, rng.chance(m, 0.25)),
        duration_minutes=pl.lit(rng.ints(m, 5, 60)),
        notes=null_where(rng.choice(m, pools.NOTES), ~rng.chance(m, 0.4)),
    )

    rng = Rng(seed, "hcp1.immunization")
    rows = repeat_rows(patient.select("patient_id").with_columns(v0=rng.ints(p, 0, 5)), rng.ints(p, 1, 4))
    m = rows.height
    immunization = rows.select(
        "patient_id",
        vaccine_code=pl.lit(pl.Series(pools.VACCINES)).gather((pl.col("v0") + pl.col("j") // 2) % len(pools.VACCINES)),
        dose_number=pl.col("j") % 2 + 1,
        administered_on=pl.lit(rng.dates(m, dt.date(2010, 1, 1), 14 * 365)),
        lot_number=null_where("LOT" + zero_padded(rng.ints(m, 0, 999_999), 6), rng.chance(m, 0.2)),
    )

    rng = Rng(seed, "hcp1.screening")
    rows = repeat_rows(patient.select("patient_id"), rng.ints(p, 1, 2))
    m = rows.height
    kind = rng.choice(m, pools.SCREENING_TYPES)
    screening = rows.select(
        screening_id=pl.int_range(1, m + 1), patient_id="patient_id",
        screening_type=pl.lit(kind), result=pl.lit(rng.choice(m, pools.SCREENING_RESULTS)),
        bmi=null_where(decimal_text(pl.lit(rng.ints(m, 140, 320)), 1).cast(pl.Float64), pl.lit(kind) != "BMI"),
        passed=null_where(rng.chance(m, 0.85), rng.chance(m, 0.1)),
        screened_on=pl.lit(rng.dates(m, dt.date(2024, 9, 1), 200)),
    )
    return {"clinic": clinic, "patient": patient, "visit": visit, "immunization": immunization,
            "screening": screening}


def _hcp2(seed: int, district: str, student: pl.DataFrame) -> dict[str, pl.DataFrame]:
    rng = Rng(seed, "hcp2.provider")
    k = max(4, student.height // 40)
    ids = pl.int_range(1, k + 1, eager=True).alias("provider_id")
    provider = pl.DataFrame({"provider_id": ids}).with_columns(
        name=rng.choice(k, pools.FIRST_NAMES) + " " + rng.choice(k, pools.LAST_NAMES),
        specialty=rng.choice(k, pools.SPECIALTIES),
        license_number="LIC-" + zero_padded(ids * 7919 % 1_000_003, 7),
        hourly_rate=null_where(decimal_text(pl.lit(rng.ints(k, 4_500, 15_000)), 2), rng.chance(k, 0.2)),
    )

    rng = Rng(seed, "hcp2.provider_credential")
    rows = repeat_rows(provider.select("provider_id").with_columns(c0=rng.ints(k, 0, 5)), rng.ints(k, 1, 3))
    m = rows.height
    credential = rows.select(
        "provider_id",
        credential_code=pl.lit(pl.Series(pools.CREDENTIALS)).gather((pl.col("c0") + pl.col("j")) % len(pools.CREDENTIALS)),
        issued_on=pl.lit(rng.dates(m, dt.date(2005, 1, 1), 18 * 365)),
        expires_on=null_where(rng.dates(m, dt.date(2025, 1, 1), 5 * 365), rng.chance(m, 0.3)),
    )

    rng = Rng(seed, "hcp2.service_plan")
    chosen = _subset(rng, student.select("student_id"), 0.15)
    m = chosen.height
    # One uuid per (district, plan): a per-district uuid5 prefix plus the plan number as the 12-digit node field.
    prefix = str(uuid.uuid5(_NAMESPACE, f"{district}/service_plan"))[:24]
    plan = chosen.select(
        plan_uuid=pl.lit(prefix) + zero_padded(pl.int_range(1, m + 1), 12),
        student_id="student_id",
        provider_id=pl.lit(rng.ints(m, 1, k)),
        plan_type=pl.lit(rng.choice(m, pools.PLAN_TYPES)),
        start_date=pl.lit(rng.dates(m, dt.date(2023, 8, 1), 700)),
        end_date=null_where(rng.dates(m, dt.date(2025, 6, 1), 365), rng.chance(m, 0.5)),
        goals=pl.lit(rng.choice(m, pools.GOALS_JSON)),
    )

    rng = Rng(seed, "hcp2.service_session")
    rows = repeat_rows(plan.select("plan_uuid"), rng.ints(m, 2, 10))
    m = rows.height
    session = rows.select(
        session_id=pl.int_range(1, m + 1), plan_uuid="plan_uuid",
        session_at=pl.lit(rng.timestamps(m, dt.date(2024, 8, 19), 280, tz=None)),
        minutes=pl.lit(rng.choice(m, (15, 30, 30, 45, 60))),
        attended=pl.lit(rng.chance(m, 0.9)),
        notes=null_where(rng.choice(m, pools.NOTES), ~rng.chance(m, 0.3)),
    )

    rng = Rng(seed, "hcp2.referral")
    chosen = _subset(rng, student.select("student_id"), 0.1)
    m = chosen.height
    referral = chosen.select(
        referral_id=pl.int_range(1, m + 1), student_id="student_id",
        provider_id=null_where(rng.ints(m, 1, k), rng.chance(m, 0.2)),
        referred_at=pl.lit(rng.timestamps(m, dt.date(2024, 8, 19), 280)),
        reason=pl.lit(rng.choice(m, pools.REFERRAL_REASONS)),
        urgent=pl.lit(rng.chance(m, 0.1)),
    )
    return {"provider": provider, "provider_credential": credential, "service_plan": plan,
            "service_session": session, "referral": referral}


def generate(seed: int, district: str, ids_tables: dict[str, pl.DataFrame]) -> dict[str, dict[str, pl.DataFrame]]:
    """``{"hcp1": {...}, "hcp2": {...}}`` (without district_id, added by the writer)."""
    student = ids_tables["edfi.student"]
    return {"hcp1": _hcp1(seed, student, ids_tables["school"]), "hcp2": _hcp2(seed, district, student)}
