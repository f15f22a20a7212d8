{#- SS 12000 person id -> pseudonym. A person id is linkable when its number is valid and
    the person is not protected in any source. pupil_key numbers the pseudonyms within this
    build: the key of the tall per-pupil tables before fct_pupil_periods maps it back to the
    pseudonym (a 64-character pseudonym in every row of int_pupil_enrolment_periods was most
    of its time at Stockholm's size: DuckDB writes strings an order slower than integers). -#}

with

persons as (

    {{ with_identity(ref('stg_ss12000__persons')) }}

),

final as (

    select
        person_id,
        person_pseudonym,
        case when person_pseudonym is not null
            then dense_rank() over (order by person_pseudonym) end as pupil_key,
        pnr_problem,
        birth_date,
        sex,
        is_protected,
        is_linkable
    from persons

)

select * from final
