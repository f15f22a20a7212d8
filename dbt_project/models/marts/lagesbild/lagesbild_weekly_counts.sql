{#- The counts of the weekly lägesbild (INDICATOR_RULES.md "Weekly lägesbild") for W and the
    trailing weeks before it, per area (the city and each SSPF area), measure and category:
    - nya_orosanmalningar: reports about children received in the week (each report counts;
      the population of the indicator orosanmalningar), by anmälare, the city only: the case
      system places a report in the stadsdelsområde that handles it, never in an SSPF area;
    - nya_unga_misstankta: distinct young suspects (< 18 on Brottsdatum) with a suspicion
      in the week (the population of unga_misstankta), by brottskategori (a person counts
      once per category), district area;
    - passerat_hog_franvaro: pupils with high absence in the week who were not high-absence
      the week before (below the threshold or not assessed), school area of the week.
    Only non-zero counts have a row; the category 'totalt' is the whole measure. -#}

with

weeks as (

    select * from {{ ref('lagesbild_weeks') }}

),

reports_of_concern as (

    select * from {{ ref('fct_reports_of_concern') }}

),

police_events as (

    select * from {{ ref('fct_police_events') }}

),

pupil_periods as (

    select * from {{ ref('fct_pupil_periods') }}

),

counted_weeks as (

    select week_offset, week_start, week_end
    from weeks
    where is_lagesbild_week or is_trailing_week

),

-- one row per counted unit and week, with its category and SSPF area (null: city only)
new_reports as (

    select
        counted_weeks.week_offset,
        'nya_orosanmalningar' as measure,
        reports_of_concern.anmalare_kategori as category,
        cast(null as varchar) as sspf_omrade_code,
        reports_of_concern.report_key as unit_key
    from reports_of_concern
    inner join counted_weeks
        on reports_of_concern.inkom_datum between counted_weeks.week_start and counted_weeks.week_end
    where reports_of_concern.is_child

),

new_young_suspects as (

    select distinct
        counted_weeks.week_offset,
        'nya_unga_misstankta' as measure,
        police_events.brottskategori as category,
        police_events.sspf_omrade_code,
        police_events.person_pseudonym as unit_key
    from police_events
    inner join counted_weeks
        on police_events.brottsdatum between counted_weeks.week_start and counted_weeks.week_end
    where police_events.roll = 'Misstänkt'
        and police_events.age_at_offence < 18
        and police_events.person_pseudonym is not null

),

pupil_weeks as (

    select
        weeks.week_offset,
        pupil_periods.person_pseudonym,
        pupil_periods.sspf_omrade_code,
        pupil_periods.is_high_absence
    from pupil_periods
    inner join weeks
        on pupil_periods.period_type = 'vecka'
        and pupil_periods.period_start = weeks.week_start

),

passed_high_absence as (

    select
        this_week.week_offset,
        'passerat_hog_franvaro' as measure,
        cast(null as varchar) as category,
        this_week.sspf_omrade_code,
        this_week.person_pseudonym as unit_key
    from pupil_weeks as this_week
    inner join counted_weeks
        on counted_weeks.week_offset = this_week.week_offset
    left join pupil_weeks as previous_week
        on previous_week.person_pseudonym = this_week.person_pseudonym
        and previous_week.week_offset = this_week.week_offset + 1
    where this_week.is_high_absence
        and not coalesce(previous_week.is_high_absence, false)

),

counted_units as (

    select * from new_reports
    union all
    select * from new_young_suspects
    union all
    select * from passed_high_absence

),

-- every unit counts in the city row and, when it has one, in its SSPF area's row
area_units as (

    select
        week_offset,
        'stad' as area_level,
        {{ required_var_string('municipality_code') }} as area_code,
        measure,
        category,
        unit_key
    from counted_units

    union all

    select
        week_offset,
        'sspf_omrade' as area_level,
        sspf_omrade_code as area_code,
        measure,
        category,
        unit_key
    from counted_units
    where sspf_omrade_code is not null

),

counts as (

    select
        week_offset,
        area_level,
        area_code,
        measure,
        case when grouping(category) = 1 then 'totalt' else category end as category,
        count(distinct unit_key) as unit_count
    from area_units
    group by grouping sets (
        (week_offset, area_level, area_code, measure),
        (week_offset, area_level, area_code, measure, category)
    )
    -- passerat_hog_franvaro has no categories: only its 'totalt' row
    having grouping(category) = 1 or category is not null

),

final as (

    select
        counts.week_offset,
        weeks.week_start,
        weeks.week_end,
        counts.area_level,
        counts.area_code,
        counts.measure,
        counts.category,
        cast(counts.unit_count as bigint) as unit_count
    from counts
    inner join weeks
        on weeks.week_offset = counts.week_offset

)

select * from final
