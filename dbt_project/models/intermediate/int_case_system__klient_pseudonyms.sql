{#- Case-system klient_id -> pseudonym. A client is linkable when its number is valid and
    the person is not protected in any source. -#}

with

clients as (

    {{ with_identity(ref('stg_case_system__klient')) }}

),

final as (

    select
        klient_id,
        person_pseudonym,
        pnr_problem,
        birth_date,
        is_protected,
        is_linkable
    from clients

)

select * from final
