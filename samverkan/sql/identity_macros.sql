-- Identity functions shared by the dbt models and the `samverkan pseudonym` command.
-- Created as temporary macros on every connection (see samverkan/pseudonymisation.py);
-- the key itself is a connection variable set with a bound parameter, never SQL text.

-- Personnummer / samordningsnummer -------------------------------------------------------------
create or replace temp macro samverkan_pnr_clean(raw) as
    regexp_replace(coalesce(raw, ''), '\s+', '', 'g');

-- Day of month without the samordningsnummer offset (+60).
create or replace temp macro samverkan_pnr_day(dd) as
    case when dd > 60 then dd - 60 else dd end;

-- Century for a 10-digit number: the latest year ending in yy whose birthday is not after
-- the reference date; 100 years earlier when the separator is '+'.
create or replace temp macro samverkan_pnr_year(yy, mm, dd, ref, plus) as
    (year(ref) // 100) * 100 + yy
    - case when ((year(ref) // 100) * 100 + yy) * 10000 + mm * 100 + samverkan_pnr_day(dd)
                > year(ref) * 10000 + month(ref) * 100 + day(ref)
           then 100 else 0 end
    - case when plus then 100 else 0 end;

-- 12-digit candidate (century resolved), or null when the text has no accepted format.
-- Accepted: YYYYMMDDNNNC, YYYYMMDD-NNNC, YYMMDD-NNNC, YYMMDD+NNNC, YYMMDDNNNC (spaces ignored).
create or replace temp macro samverkan_pnr_candidate(s, ref) as
    case
        when regexp_full_match(s, '[0-9]{12}') then s
        when regexp_full_match(s, '[0-9]{8}[-+][0-9]{4}') then substr(s, 1, 8) || substr(s, 10, 4)
        when regexp_full_match(s, '[0-9]{6}[-+]?[0-9]{4}') then
            lpad(cast(samverkan_pnr_year(
                cast(substr(s, 1, 2) as integer),
                cast(substr(s, 3, 2) as integer),
                cast(substr(s, 5, 2) as integer),
                ref,
                contains(s, '+')) as varchar), 4, '0')
            || substr(s, 3, 4) || right(s, 4)
        else null
    end;

-- Birth date of a 12-digit number (day − 60 for a samordningsnummer); null when impossible.
create or replace temp macro samverkan_pnr_birth_date(pnr12) as
    try_cast(
        substr(pnr12, 1, 4) || '-' || substr(pnr12, 5, 2) || '-'
        || lpad(cast(samverkan_pnr_day(cast(substr(pnr12, 7, 2) as integer)) as varchar), 2, '0')
        as date);

-- Luhn check over the 10 digits YYMMDDNNNC.
create or replace temp macro samverkan_luhn_ok(d10) as
    list_sum(list_transform(range(10), i ->
        (cast(substr(d10, i + 1, 1) as integer) * (2 - i % 2)) // 10
        + (cast(substr(d10, i + 1, 1) as integer) * (2 - i % 2)) % 10)) % 10 = 0;

-- Why an identifier is unusable (null when it is valid):
-- 'missing', 'bad_format', 'bad_date' (impossible or future date), 'bad_checksum'.
create or replace temp macro samverkan_pnr_problem(raw, ref) as
    case
        when samverkan_pnr_clean(raw) = '' then 'missing'
        when samverkan_pnr_candidate(samverkan_pnr_clean(raw), ref) is null then 'bad_format'
        when samverkan_pnr_birth_date(samverkan_pnr_candidate(samverkan_pnr_clean(raw), ref)) is null
            or samverkan_pnr_birth_date(samverkan_pnr_candidate(samverkan_pnr_clean(raw), ref)) > ref
            then 'bad_date'
        when not samverkan_luhn_ok(substr(samverkan_pnr_candidate(samverkan_pnr_clean(raw), ref), 3, 10))
            then 'bad_checksum'
        else null
    end;

-- The normalised 12-digit number, or null when the identifier is unusable.
create or replace temp macro samverkan_normalise_pnr(raw, ref) as
    case when samverkan_pnr_problem(raw, ref) is null
         then samverkan_pnr_candidate(samverkan_pnr_clean(raw), ref) end;

-- HMAC-SHA256 (RFC 2104) -----------------------------------------------------------------------
create or replace temp macro samverkan_hmac_key0(key) as
    case when octet_length(key) > 64 then unhex(sha256(key)) else key end;

create or replace temp macro samverkan_hmac_padded_key(key) as
    samverkan_hmac_key0(key) || unhex(repeat('00', 64 - octet_length(samverkan_hmac_key0(key))));

-- Lowercase hex HMAC-SHA256 of msg (BLOB) under key (BLOB).
create or replace temp macro samverkan_hmac_sha256(key, msg) as
    sha256(
        cast(xor(cast(samverkan_hmac_padded_key(key) as bit), cast(unhex(repeat('5c', 64)) as bit)) as blob)
        || unhex(sha256(
            cast(xor(cast(samverkan_hmac_padded_key(key) as bit), cast(unhex(repeat('36', 64)) as bit)) as blob)
            || msg)));

-- Pseudonym of a normalised 12-digit number under the configured key.
create or replace temp macro samverkan_pseudonym(pnr12) as
    case when pnr12 is not null
         then samverkan_hmac_sha256(getvariable('samverkan_pseudonym_key'), encode(pnr12)) end;
