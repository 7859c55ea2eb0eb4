-- CERT schema of the `hcp1` store (school health clinics): clinics, patients, visits, immunizations, screenings.
-- Applied by the CERT owners before any load; the loader only reads this catalog.

CREATE TABLE clinic (
    district_id  text         NOT NULL,
    clinic_id    integer      NOT NULL,
    name         text         NOT NULL,
    school_id    integer      NOT NULL,
    phone        varchar(20),
    open_hours   jsonb,
    loaded_at    timestamptz  NOT NULL DEFAULT now(),
    PRIMARY KEY (district_id, clinic_id)
);

CREATE TABLE patient (
    district_id       text         NOT NULL,
    patient_id        bigint       NOT NULL,
    student_id        bigint       NOT NULL,
    clinic_id         integer      NOT NULL,
    primary_language  varchar(40)  NOT NULL,
    allergies         jsonb        NOT NULL,
    consent_on_file   boolean      NOT NULL,
    registered_on     date         NOT NULL,
    status            text         NOT NULL DEFAULT 'active',
    PRIMARY KEY (district_id, patient_id),
    UNIQUE (district_id, student_id),
    FOREIGN KEY (district_id, clinic_id) REFERENCES clinic (district_id, clinic_id)
);

CREATE TABLE visit (
    district_id       text          NOT NULL,
    visit_id          bigint        NOT NULL,
    patient_id        bigint        NOT NULL,
    clinic_id         integer       NOT NULL,
    visit_at          timestamptz   NOT NULL,
    reason            text          NOT NULL,
    temperature_f     numeric(4,1),
    duration_minutes  smallint      NOT NULL,
    notes             text,
    PRIMARY KEY (district_id, visit_id),
    FOREIGN KEY (district_id, patient_id) REFERENCES patient (district_id, patient_id),
    FOREIGN KEY (district_id, clinic_id) REFERENCES clinic (district_id, clinic_id)
);

CREATE TABLE immunization (
    district_id      text         NOT NULL,
    patient_id       bigint       NOT NULL,
    vaccine_code     varchar(10)  NOT NULL,
    dose_number      smallint     NOT NULL,
    administered_on  date         NOT NULL,
    lot_number       varchar(20),
    loaded_at        timestamptz  NOT NULL DEFAULT now(),
    PRIMARY KEY (district_id, patient_id, vaccine_code, dose_number),
    FOREIGN KEY (district_id, patient_id) REFERENCES patient (district_id, patient_id)
);

CREATE TABLE screening (
    district_id     text         NOT NULL,
    screening_id    bigint       NOT NULL,
    patient_id      bigint       NOT NULL,
    screening_type  varchar(20)  NOT NULL,
    result          text         NOT NULL,
    bmi             float8,
    passed          boolean,
    screened_on     date         NOT NULL,
    PRIMARY KEY (district_id, screening_id),
    FOREIGN KEY (district_id, patient_id) REFERENCES patient (district_id, patient_id)
);
