{#- The people and records each source contributes that are kept out of every indicator:
    protected identities (in any source) and unusable identifiers, by reason. Counts only. -#}

with

ss12000_persons as (

    select 'ss12000' as source_system, pnr12, pnr_problem
    from {{ ref('stg_ss12000__persons') }}

),

case_system_clients as (

    select 'case_system' as source_system, pnr12, pnr_problem
    from {{ ref('stg_case_system__klient') }}

),

police_rows as (

    select 'police' as source_system, pnr12, pnr_problem
    from {{ ref('stg_police__events') }}

),

records as (

    select * from ss12000_persons
    union all
    select * from case_system_clients
    union all
    select * from police_rows

),

protected_numbers as (

    select pnr12 from {{ ref('int_identities') }} where is_protected

),

classified as (

    select
        records.source_system,
        records.pnr12,
        case
            when records.pnr_problem is not null then 'invalid_identifier_' || records.pnr_problem
            when protected_numbers.pnr12 is not null then 'protected_identity'
        end as reason
    from records
    left join protected_numbers using (pnr12)

),

final as (

    select
        source_system,
        reason,
        count(*) as records,
        count(distinct pnr12) as people
    from classified
    where reason is not null
    group by source_system, reason

)

select * from final
