-- CERT schema of the `ids` store (student information): schools, staff, students and their schedules.
-- Applied by the CERT owners before any load; the loader only reads this catalog.

CREATE SCHEMA IF NOT EXISTS edfi;

CREATE TABLE school (
    district_id         text         NOT NULL,
    school_id           integer      NOT NULL,
    name                varchar(120) NOT NULL,
    school_type         text         NOT NULL,
    address             text,
    phone               varchar(20),
    principal_staff_id  bigint,
    opened_on           date         NOT NULL,
    enrollment_capacity integer      NOT NULL,
    loaded_at           timestamptz  NOT NULL DEFAULT now(),
    PRIMARY KEY (district_id, school_id)
);

CREATE TABLE staff (
    district_id     text         NOT NULL,
    staff_id        bigint       NOT NULL,
    first_name      varchar(60)  NOT NULL,
    last_name       varchar(60)  NOT NULL,
    preferred_name  text,
    title           text         NOT NULL,
    school_id       integer,
    supervisor_id   bigint,
    hire_date       date         NOT NULL,
    salary          numeric(10,2),
    fte             float8       NOT NULL,
    is_certified    boolean      NOT NULL,
    status          text         NOT NULL DEFAULT 'active',
    loaded_at       timestamptz  NOT NULL DEFAULT now(),
    PRIMARY KEY (district_id, staff_id),
    FOREIGN KEY (district_id, school_id) REFERENCES school (district_id, school_id),
    FOREIGN KEY (district_id, supervisor_id) REFERENCES staff (district_id, staff_id)
);

-- The one deferrable FK: a school's principal is a staff member who works at the school (a cycle).
ALTER TABLE school
    ADD CONSTRAINT school_principal_fk
    FOREIGN KEY (district_id, principal_staff_id) REFERENCES staff (district_id, staff_id)
    DEFERRABLE INITIALLY IMMEDIATE;

CREATE TABLE school_calendar (
    district_id       text     NOT NULL,
    school_id         integer  NOT NULL,
    calendar_date     date     NOT NULL,
    is_instructional  boolean  NOT NULL,
    day_type          varchar(20) NOT NULL,
    PRIMARY KEY (district_id, school_id, calendar_date),
    FOREIGN KEY (district_id, school_id) REFERENCES school (district_id, school_id)
);

CREATE TABLE edfi.student (
    district_id        text         NOT NULL,
    student_id         bigint       NOT NULL,
    student_unique_id  varchar(32)  NOT NULL,
    first_name         varchar(60)  NOT NULL,
    last_name          varchar(60)  NOT NULL,
    full_name          text GENERATED ALWAYS AS (first_name || ' ' || last_name) STORED,
    birth_date         date         NOT NULL,
    "Grade Level"      smallint     NOT NULL,
    school_id          integer      NOT NULL,
    email              varchar(120),
    is_active          boolean      NOT NULL,
    notes              text,
    created_at         timestamp    NOT NULL,
    status             text         NOT NULL DEFAULT 'active',
    loaded_at          timestamptz  NOT NULL DEFAULT now(),
    PRIMARY KEY (district_id, student_id),
    UNIQUE (district_id, student_unique_id),
    FOREIGN KEY (district_id, school_id) REFERENCES school (district_id, school_id)
);

CREATE TABLE edfi.course (
    district_id   text          NOT NULL,
    course_code   varchar(20)   NOT NULL,
    title         text          NOT NULL,
    subject       varchar(40)   NOT NULL,
    credits       numeric(4,2)  NOT NULL,
    is_ap         boolean       NOT NULL,
    PRIMARY KEY (district_id, course_code)
);

CREATE TABLE edfi.section (
    district_id        text         NOT NULL,
    section_id         bigint       NOT NULL,
    course_code        varchar(20)  NOT NULL,
    school_id          integer      NOT NULL,
    teacher_staff_id   bigint       NOT NULL,
    term               varchar(12)  NOT NULL,
    room               varchar(10),
    capacity           smallint     NOT NULL,
    PRIMARY KEY (district_id, section_id),
    FOREIGN KEY (district_id, course_code) REFERENCES edfi.course (district_id, course_code),
    FOREIGN KEY (district_id, school_id) REFERENCES school (district_id, school_id),
    FOREIGN KEY (district_id, teacher_staff_id) REFERENCES staff (district_id, staff_id)
);

CREATE TABLE edfi.enrollment (
    district_id  text          NOT NULL,
    student_id   bigint        NOT NULL,
    section_id   bigint        NOT NULL,
    begin_date   date          NOT NULL,
    end_date     date,
    final_grade  numeric(5,2),
    loaded_at    timestamptz   NOT NULL DEFAULT now(),
    PRIMARY KEY (district_id, student_id, section_id),
    FOREIGN KEY (district_id, student_id) REFERENCES edfi.student (district_id, student_id),
    FOREIGN KEY (district_id, section_id) REFERENCES edfi.section (district_id, section_id)
);

CREATE TABLE edfi.attendance_event (
    district_id     text         NOT NULL,
    attendance_id   bigint       NOT NULL,
    student_id      bigint       NOT NULL,
    school_id       integer      NOT NULL,
    event_date      date         NOT NULL,
    event_type      varchar(20)  NOT NULL,
    minutes_absent  integer      NOT NULL,
    comment         text,
    recorded_at     timestamptz  NOT NULL,
    PRIMARY KEY (district_id, attendance_id),
    FOREIGN KEY (district_id, student_id) REFERENCES edfi.student (district_id, student_id),
    FOREIGN KEY (district_id, school_id) REFERENCES school (district_id, school_id)
);
