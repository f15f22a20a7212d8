{#- One row per linkable pupil (pseudonym) of this build: pupil_state, a digest of
    everything fct_pupil_periods takes from the pupil apart from attendance: the pupil's
    linkable SS 12000 person ids and every current enrolment of them, with the school unit's
    code, Huvudman kind and areas, and whether the enrolment has started and ended by R.
    fct_pupil_periods keeps the states it was built from (fct_pupil_periods__as_built_pupils)
    and rebuilds every period of a pupil whose state is new or changed: a move, a new id, a
    school unit moved to another area, an enrolment that ended since the last build. A
    pupil that is no longer linkable (protected, an invalid number) has no row here, and a
    new key changes every pseudonym, so every pupil is new. -#}

with

people as (

    select person_id, pupil_key, person_pseudonym
    from {{ ref('int_ss12000__person_pseudonyms') }}
    where is_linkable

),

enrolments as (

    select * from {{ ref('int_ss12000__current_enrolments') }}

),

-- a digest of the pupil's rows (each person id with each of its enrolments; a person id
-- without an enrolment once, with nulls): the sum of their 64-bit hashes, the same in any
-- order (an ordered list of the rows took 1 s at Stockholm's size, the sum 0.04 s). DuckDB's
-- hash may change with its version: an upgrade rebuilds the incremental models from scratch
-- (samverkan/incremental.py), so states of two versions are never compared.
final as (

    select
        people.pupil_key,
        people.person_pseudonym,
        sum(hash(
            people.person_id,
            enrolments.school_unit_id,
            enrolments.school_unit_code,
            enrolments.school_type,
            enrolments.school_year,
            enrolments.start_date,
            enrolments.end_date,
            enrolments.huvudman_kind,
            enrolments.sspf_omrade_code,
            enrolments.stadsdelsomrade_code,
            enrolments.start_date <= {{ reference_date() }},
            enrolments.end_date <= {{ reference_date() }}
        )) as pupil_state
    from people
    left join enrolments
        on enrolments.person_id = people.person_id
    group by people.pupil_key, people.person_pseudonym

)

select * from final
