-- CERT schema of the `adb` store (assessments): tests, windows, items, levels, student results.
-- Applied by the CERT owners before any load; the loader only reads this catalog.

CREATE TABLE assessment (
    district_id       text          NOT NULL,
    assessment_id     integer       NOT NULL,
    title             text          NOT NULL,
    subject           varchar(40)   NOT NULL,
    max_score         numeric(6,2)  NOT NULL,
    administered_year smallint      NOT NULL,
    loaded_at         timestamptz   NOT NULL DEFAULT now(),
    PRIMARY KEY (district_id, assessment_id)
);

CREATE TABLE assessment_window (
    district_id    text      NOT NULL,
    window_id      integer   NOT NULL,
    assessment_id  integer   NOT NULL,
    opens_on       date      NOT NULL,
    closes_on      date      NOT NULL,
    season         varchar(10) NOT NULL,
    PRIMARY KEY (district_id, window_id),
    FOREIGN KEY (district_id, assessment_id) REFERENCES assessment (district_id, assessment_id)
);

CREATE TABLE assessment_item (
    district_id    text          NOT NULL,
    assessment_id  integer       NOT NULL,
    item_number    smallint      NOT NULL,
    item_type      varchar(20)   NOT NULL,
    points         numeric(5,2)  NOT NULL,
    metadata       jsonb         NOT NULL,
    PRIMARY KEY (district_id, assessment_id, item_number),
    FOREIGN KEY (district_id, assessment_id) REFERENCES assessment (district_id, assessment_id)
);

CREATE TABLE performance_level (
    district_id    text          NOT NULL,
    assessment_id  integer       NOT NULL,
    level_code     varchar(4)    NOT NULL,
    label          text          NOT NULL,
    min_score      numeric(6,2)  NOT NULL,
    max_score      numeric(6,2)  NOT NULL,
    PRIMARY KEY (district_id, assessment_id, level_code),
    FOREIGN KEY (district_id, assessment_id) REFERENCES assessment (district_id, assessment_id)
);

CREATE TABLE student_assessment (
    district_id            text          NOT NULL,
    student_assessment_id  bigint        NOT NULL,
    student_id             bigint        NOT NULL,
    assessment_id          integer       NOT NULL,
    window_id              integer       NOT NULL,
    administered_on        date          NOT NULL,
    scale_score            numeric(6,2)  NOT NULL,
    percentile             float8,
    score_ratio            numeric(7,4) GENERATED ALWAYS AS (scale_score / 100.0) STORED,
    accommodations         jsonb,
    submitted_at           timestamptz   NOT NULL,
    status                 text          NOT NULL DEFAULT 'scored',
    PRIMARY KEY (district_id, student_assessment_id),
    FOREIGN KEY (district_id, assessment_id) REFERENCES assessment (district_id, assessment_id),
    FOREIGN KEY (district_id, window_id) REFERENCES assessment_window (district_id, window_id)
);

CREATE TABLE objective_score (
    district_id            text         NOT NULL,
    student_assessment_id  bigint       NOT NULL,
    objective_code         varchar(8)   NOT NULL,
    raw_score              smallint     NOT NULL,
    mastery                boolean,
    PRIMARY KEY (district_id, student_assessment_id, objective_code),
    FOREIGN KEY (district_id, student_assessment_id) REFERENCES student_assessment (district_id, student_assessment_id)
);
