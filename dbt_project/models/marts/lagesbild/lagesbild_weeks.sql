{#- The weeks of the weekly lägesbild (INDICATOR_RULES.md "Weekly lägesbild"): W, the latest
    ISO week that has ended by the reference date R (on a Sunday the week of R, otherwise the
    week before R's), and the lagesbild_trailing_weeks + 1 weeks before it (the trailing
    average needs weeks 1..N; "passed the threshold" in week N compares with week N + 1). -#}

{%- set trailing_weeks = var_int('lagesbild_trailing_weeks', 1) %}

with

bounds as (

    select
        case
            when isodow({{ reference_date() }}) = 7 then {{ reference_date() }}
            else cast(date_trunc('week', {{ reference_date() }}) as date) - 1
        end as lagesbild_week_end

),

offsets as (

    select cast(unnest(range(0, {{ trailing_weeks + 2 }})) as integer) as week_offset

),

weeks as (

    select
        offsets.week_offset,
        cast(bounds.lagesbild_week_end - 7 * offsets.week_offset - 6 as date) as week_start,
        cast(bounds.lagesbild_week_end - 7 * offsets.week_offset as date) as week_end
    from offsets
    cross join bounds

),

final as (

    select
        week_offset,
        week_start,
        week_end,
        strftime(week_start, '%G-W%V') as iso_week,
        week_offset = 0 as is_lagesbild_week,
        week_offset between 1 and {{ trailing_weeks }} as is_trailing_week
    from weeks

)

select * from final
