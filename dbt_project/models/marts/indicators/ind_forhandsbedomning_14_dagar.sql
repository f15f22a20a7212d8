with

reports_of_concern as (

    select * from {{ ref('fct_reports_of_concern') }}

),

-- the reports counted by orosanmalningar whose 14-day deadline has passed by R
deadline_passed as (

    select
        aktualisering_id,
        cast(date_trunc('month', inkom_datum) as date) as month_start,
        stadsdelsomrade_code,
        -- a decision dated after R is still pending on R; pending after the deadline is late
        coalesce(
            forhandsbedomning_datum <= forhandsbedomning_deadline
            and forhandsbedomning_datum <= {{ reference_date() }},
            false
        ) as is_decided_in_time
    from reports_of_concern
    where is_child
        and forhandsbedomning_deadline < {{ reference_date() }}

),

cells as (

    {{ indicator_cells(
        'deadline_passed',
        numerator='count(*) filter (where is_decided_in_time)',
        denominator='count(*)'
    ) }}

),

final as (

    {{ indicator_rows('cells', 'forhandsbedomning_14_dagar', 'andel') }}

)

select * from final
