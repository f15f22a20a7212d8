-- Restricted warehouse: raw tables as loaded from landing batches, quarantine and load metadata.
-- Every raw table is append-only and carries the batch it came from; staging picks the newest
-- version of each row. Names and addresses never reach these tables (they stop at landing).

create schema if not exists load_meta;
create schema if not exists raw_ss12000;
create schema if not exists raw_case_system;
create schema if not exists raw_police;

create table if not exists load_meta.batches (
    batch_id varchar primary key,
    source varchar not null,            -- 'ss12000' | 'case_system' | 'police'
    extracted_at timestamptz not null,
    loaded_at timestamptz not null,
    watermark_from varchar,             -- exclusive lower bound used for the pull (RFC 3339 / ISO text)
    watermark_to varchar,               -- highest modification time seen in the batch
    rows_received bigint not null,
    rows_loaded bigint not null,
    rows_quarantined bigint not null,
    manifest_path varchar not null
);

-- Per entity: rows received/loaded/quarantined for one batch (sums to the batch row in load_meta.batches).
create table if not exists load_meta.batch_entities (
    batch_id varchar not null,
    entity varchar not null,
    rows_received bigint not null,
    rows_loaded bigint not null,
    rows_quarantined bigint not null,
    primary key (batch_id, entity)
);

create table if not exists load_meta.watermarks (
    source varchar not null,
    entity varchar not null,
    watermark varchar not null,
    updated_at timestamptz not null,
    primary key (source, entity)
);

create table if not exists load_meta.quarantine (
    batch_id varchar not null,
    source varchar not null,
    entity varchar not null,
    row_number bigint,                  -- position in the batch / file (1-based), when known
    reason varchar not null,            -- reason code, e.g. 'unparseable_row', 'bad_date', 'missing_key'
    detail varchar,                     -- column name or short explanation, never the identifier value
    raw_row varchar                     -- the row as received (restricted zone only)
);

-- SS 12000 ------------------------------------------------------------------------------------
create table if not exists raw_ss12000.organisations (
    batch_id varchar not null,
    id varchar not null,
    display_name varchar,
    organisation_type varchar,          -- 'Huvudman' | 'Skolenhet' | ...
    organisation_number varchar,
    school_unit_code varchar,
    municipality_code varchar,
    school_types varchar[],
    parent_organisation_id varchar,
    modified_at timestamptz
);

create table if not exists raw_ss12000.persons (
    batch_id varchar not null,
    id varchar not null,
    civic_no varchar,                   -- civicNo.value as served (12 digits expected)
    birth_date date,
    sex varchar,
    security_marking varchar,           -- 'Ingen' | 'Sekretessmarkering' | 'Skyddad folkbokföring'
    modified_at timestamptz
);

create table if not exists raw_ss12000.enrolments (
    batch_id varchar not null,
    person_id varchar not null,
    school_unit_id varchar not null,     -- enroledAt.id (an organisation id)
    school_type varchar,
    school_year integer,
    start_date date,
    end_date date,
    person_modified_at timestamptz      -- modification time of the person record it came with
);

create table if not exists raw_ss12000.calendar_events (
    batch_id varchar not null,
    id varchar not null,
    activity_id varchar,
    start_time timestamptz not null,
    end_time timestamptz not null,
    modified_at timestamptz
);

create table if not exists raw_ss12000.attendances (
    batch_id varchar not null,
    id varchar not null,
    calendar_event_id varchar not null,
    student_id varchar not null,
    is_reported boolean,
    attendance_minutes integer,
    valid_absence_minutes integer,
    invalid_absence_minutes integer,
    other_attendance_minutes integer,
    reported_timestamp timestamptz,
    modified_at timestamptz
);

create table if not exists raw_ss12000.deleted_entities (
    batch_id varchar not null,
    entity_type varchar not null,       -- endpoint name, e.g. 'attendances'
    id varchar not null
);

-- Case system --------------------------------------------------------------------------------
create table if not exists raw_case_system.klient (
    batch_id varchar not null,
    klient_id bigint not null,
    personnummer varchar,
    skyddad_identitet boolean,
    andrad_tid timestamp
);

create table if not exists raw_case_system.aktualisering (
    batch_id varchar not null,
    aktualisering_id bigint not null,
    klient_id bigint,
    inkom_datum date,
    typ varchar,
    anmalare_kategori varchar,
    skyddsbedomning_datum date,
    forhandsbedomning_datum date,
    beslut varchar,
    stadsdel varchar,
    andrad_tid timestamp
);

create table if not exists raw_case_system.utredning (
    batch_id varchar not null,
    utredning_id bigint not null,
    klient_id bigint,
    aktualisering_id bigint,
    startdatum date,
    avslutsdatum date,
    resultat varchar,
    andrad_tid timestamp
);

create table if not exists raw_case_system.insats (
    batch_id varchar not null,
    insats_id bigint not null,
    klient_id bigint,
    insatstyp varchar,
    startdatum date,
    slutdatum date,
    planerat_slutdatum date,
    avslutsorsak varchar,
    andrad_tid timestamp
);

create table if not exists raw_case_system.gallring (
    batch_id varchar not null,
    tabell varchar not null,
    rad_id bigint not null,
    gallrad_tid timestamp
);

-- Police file drop ---------------------------------------------------------------------------
create table if not exists raw_police.events (
    batch_id varchar not null,
    file_name varchar not null,
    line_number bigint not null,        -- 1-based line in the file, header = 1
    diarienummer varchar not null,
    brottsdatum date,
    anmalningsdatum date,
    brottskod varchar,
    brottsbenamning varchar,
    kommun varchar,
    stadsdel varchar,
    personnummer varchar,
    roll varchar,
    alder integer,
    status varchar,
    senast_andrad timestamp
);

-- Files already taken from a file-drop inbox (police): a file seen again with the same
-- checksum is not loaded twice; a changed file with the same name is a new delivery.
create table if not exists load_meta.source_files (
    source varchar not null,
    file_name varchar not null,
    sha256 varchar not null,
    size_bytes bigint not null,
    batch_id varchar not null,
    primary key (source, file_name, sha256)
);

-- Outcome of the Great Expectations suite run on each landed batch before it is loaded.
create table if not exists load_meta.batch_validations (
    batch_id varchar not null,
    source varchar not null,
    validated_at timestamptz not null,
    success boolean not null,
    failed_expectations varchar,        -- names of failed checks, never data values
    report_path varchar
);
