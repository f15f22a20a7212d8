with

pupil_months as (

    select * from {{ ref('fct_pupil_months') }}

),

assessed as (

    select
        person_pseudonym,
        month_start,
        stadsdelsomrade_code,
        is_high_absence
    from pupil_months
    where is_assessed

),

cells as (

    {{ indicator_cells(
        'assessed',
        numerator='count(distinct person_pseudonym) filter (where is_high_absence)',
        denominator='count(distinct person_pseudonym)'
    ) }}

),

final as (

    {{ indicator_rows('cells', 'hog_franvaro', 'andel') }}

)

select * from final
