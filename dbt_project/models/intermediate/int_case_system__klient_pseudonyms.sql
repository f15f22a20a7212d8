{#- Case-system klient_id -> pseudonym. A client is linkable when its number is valid and
    the person is not protected in any source. -#}

with

clients as (

    select * from {{ ref('stg_case_system__klient') }}

),

identities as (

    select * from {{ ref('int_identities') }}

),

final as (

    select
        clients.klient_id,
        identities.person_pseudonym,
        clients.pnr_problem,
        identities.birth_date,
        coalesce(identities.is_protected, clients.is_protected) as is_protected,
        identities.person_pseudonym is not null
            and not coalesce(identities.is_protected, clients.is_protected) as is_linkable
    from clients
    left join identities
        on identities.pnr12 = clients.pnr12

)

select * from final
