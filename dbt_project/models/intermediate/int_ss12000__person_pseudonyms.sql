{#- SS 12000 person id -> pseudonym. A person id is linkable when its number is valid and
    the person is not protected in any source. -#}

with

persons as (

    {{ with_identity(ref('stg_ss12000__persons')) }}

),

final as (

    select
        person_id,
        person_pseudonym,
        pnr_problem,
        birth_date,
        sex,
        is_protected,
        is_linkable
    from persons

)

select * from final
