{#- One row per linkable pupil (pseudonym) of this build: pupil_state, a 128-bit digest of
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

-- one list per pupil: each person id with each of its enrolments (a person id without an
-- enrolment once, with nulls), in the order of the enrolment keys (which follow the
-- enrolments' content); to_json tells a null from the text 'null'
final as (

    select
        people.pupil_key,
        people.person_pseudonym,
        md5_number(to_json(list(struct_pack(
            person_id := people.person_id,
            school_unit_id := enrolments.school_unit_id,
            school_unit_code := enrolments.school_unit_code,
            school_type := enrolments.school_type,
            school_year := enrolments.school_year,
            start_date := enrolments.start_date,
            end_date := enrolments.end_date,
            huvudman_kind := enrolments.huvudman_kind,
            sspf_omrade_code := enrolments.sspf_omrade_code,
            stadsdelsomrade_code := enrolments.stadsdelsomrade_code,
            has_started := enrolments.start_date <= {{ reference_date() }},
            has_ended := enrolments.end_date <= {{ reference_date() }}
        ) order by people.person_id, enrolments.enrolment_key))) as pupil_state
    from people
    left join enrolments
        on enrolments.person_id = people.person_id
    group by people.pupil_key, people.person_pseudonym

)

select * from final
