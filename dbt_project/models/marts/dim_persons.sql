{#- One row per linkable person (valid identifier, not protected): pseudonym, birth year
    and sex at most, and the sources the person appears in. -#}

with

identities as (

    select * from {{ ref('int_identities') }}
    where not is_protected

),

ss12000_people as (

    select
        person_pseudonym,
        max(sex) as sex
    from {{ ref('int_ss12000__person_pseudonyms') }}
    where is_linkable
    group by person_pseudonym

),

final as (

    select
        identities.person_pseudonym,
        year(identities.birth_date) as birth_year,
        ss12000_people.sex,
        identities.is_in_ss12000,
        identities.is_in_case_system,
        identities.is_in_police
    from identities
    left join ss12000_people
        on ss12000_people.person_pseudonym = identities.person_pseudonym

)

select * from final
