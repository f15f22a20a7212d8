with

child_agency_months as (

    select * from {{ ref('fct_child_agency_months') }}

),

known_to_several as (

    select
        person_pseudonym,
        month_start,
        stadsdelsomrade_code,
        agency_count
    from child_agency_months
    where age_on_month_end between 0 and 17
        and agency_count >= 2

),

known_to_all_three as (

    select * from known_to_several
    where agency_count = 3

),

cells as (

    {{ indicator_cells('known_to_several', numerator='count(distinct person_pseudonym)') }}

    union all

    {{ indicator_cells(
        'known_to_all_three',
        numerator='count(distinct person_pseudonym)',
        breakdown='antal_verksamheter',
        breakdown_value='3'
    ) }}

),

final as (

    {{ indicator_rows('cells', 'kanda_av_flera', 'antal') }}

)

select * from final
