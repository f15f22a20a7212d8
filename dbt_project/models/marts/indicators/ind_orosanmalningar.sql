with

reports_of_concern as (

    select * from {{ ref('fct_reports_of_concern') }}

),

about_children as (

    select
        aktualisering_id,
        cast(date_trunc('month', inkom_datum) as date) as month_start,
        stadsdelsomrade_code
    from reports_of_concern
    where is_child

),

cells as (

    {{ indicator_cells('about_children', numerator='count(*)') }}

),

final as (

    {{ indicator_rows('cells', 'orosanmalningar', 'antal') }}

)

select * from final
