with

child_agency_periods as (

    select * from {{ ref('fct_child_agency_periods') }}

),

-- children (0-17 on period_end) known to at least two agencies in the trailing window; the
-- antal_verksamheter breakdown counts those known to all three
known_to_several as (

    select
        period_type,
        period_start,
        person_pseudonym,
        stadsdelsomrade_code,
        sspf_omrade_code,
        case when agency_count = 3 then '3' end as antal_verksamheter
    from child_agency_periods
    where age_on_period_end between 0 and 17
        and agency_count >= 2

),

final as (

    {{ indicator_cube('known_to_several', areas='school', breakdowns=['antal_verksamheter']) }}

)

select * from final
