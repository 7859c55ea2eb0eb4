-- CERT schema of the `hcp2` store (counseling and related services): providers, service plans, sessions, referrals.
-- Applied by the CERT owners before any load; the loader only reads this catalog.

CREATE TABLE provider (
    district_id     text         NOT NULL,
    provider_id     integer      NOT NULL,
    name            text         NOT NULL,
    specialty       varchar(40)  NOT NULL,
    license_number  varchar(20)  NOT NULL,
    hourly_rate     numeric(8,2),
    loaded_at       timestamptz  NOT NULL DEFAULT now(),
    PRIMARY KEY (district_id, provider_id),
    UNIQUE (district_id, license_number)
);

CREATE TABLE provider_credential (
    district_id      text         NOT NULL,
    provider_id      integer      NOT NULL,
    credential_code  varchar(12)  NOT NULL,
    issued_on        date         NOT NULL,
    expires_on       date,
    PRIMARY KEY (district_id, provider_id, credential_code),
    FOREIGN KEY (district_id, provider_id) REFERENCES provider (district_id, provider_id)
);

-- Keyed by a single uuid (no district_id in the key); the uuids differ per district.
CREATE TABLE service_plan (
    plan_uuid    uuid         PRIMARY KEY,
    district_id  text         NOT NULL,
    student_id   bigint       NOT NULL,
    provider_id  integer      NOT NULL,
    plan_type    varchar(20)  NOT NULL,
    start_date   date         NOT NULL,
    end_date     date,
    goals        jsonb        NOT NULL,
    status       text         NOT NULL DEFAULT 'active',
    FOREIGN KEY (district_id, provider_id) REFERENCES provider (district_id, provider_id)
);

CREATE TABLE service_session (
    district_id  text         NOT NULL,
    session_id   bigint       NOT NULL,
    plan_uuid    uuid         NOT NULL REFERENCES service_plan (plan_uuid),
    session_at   timestamp    NOT NULL,
    minutes      smallint     NOT NULL,
    attended     boolean      NOT NULL,
    notes        text,
    PRIMARY KEY (district_id, session_id)
);

CREATE TABLE referral (
    district_id   text         NOT NULL,
    referral_id   bigint       NOT NULL,
    student_id    bigint       NOT NULL,
    provider_id   integer,
    referred_at   timestamptz  NOT NULL,
    reason        text         NOT NULL,
    urgent        boolean      NOT NULL,
    loaded_at     timestamptz  NOT NULL DEFAULT now(),
    PRIMARY KEY (district_id, referral_id),
    FOREIGN KEY (district_id, provider_id) REFERENCES provider (district_id, provider_id)
);
