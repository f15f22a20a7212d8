{#- SS 12000 person id -> pseudonym. A person id is linkable when its number is valid and
    the person is not protected in any source. -#}

with

persons as (

    select * from {{ ref('stg_ss12000__persons') }}

),

identities as (

    select * from {{ ref('int_identities') }}

),

final as (

    select
        persons.person_id,
        identities.person_pseudonym,
        persons.pnr_problem,
        identities.birth_date,
        persons.sex,
        coalesce(identities.is_protected, persons.is_protected) as is_protected,
        identities.person_pseudonym is not null
            and not coalesce(identities.is_protected, persons.is_protected) as is_linkable
    from persons
    left join identities
        on identities.pnr12 = persons.pnr12

)

select * from final
