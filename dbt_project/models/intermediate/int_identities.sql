{#- One row per distinct person (normalised 12-digit number) across the three sources:
    the pseudonym is computed here, once per person, and every other model links through
    it. Protected identity in any source marks the person protected everywhere. -#}

with

ss12000_persons as (

    select pnr12, is_protected
    from {{ ref('stg_ss12000__persons') }}
    where pnr12 is not null

),

case_system_clients as (

    select pnr12, is_protected
    from {{ ref('stg_case_system__klient') }}
    where pnr12 is not null

),

police_people as (

    select pnr12
    from {{ ref('stg_police__events') }}
    where pnr12 is not null

),

numbers as (

    select pnr12, is_protected, 'ss12000' as source_system from ss12000_persons
    union all
    select pnr12, is_protected, 'case_system' as source_system from case_system_clients
    union all
    select pnr12, false as is_protected, 'police' as source_system from police_people

),

distinct_numbers as (

    select
        pnr12,
        bool_or(is_protected) as is_protected,
        bool_or(source_system = 'ss12000') as is_in_ss12000,
        bool_or(source_system = 'case_system') as is_in_case_system,
        bool_or(source_system = 'police') as is_in_police
    from numbers
    group by pnr12

),

final as (

    select
        samverkan_pseudonym(pnr12) as person_pseudonym,
        pnr12,
        samverkan_pnr_birth_date(pnr12) as birth_date,
        is_protected,
        is_in_ss12000,
        is_in_case_system,
        is_in_police
    from distinct_numbers

)

select * from final
