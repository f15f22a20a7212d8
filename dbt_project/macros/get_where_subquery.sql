{#- dbt's `where` config of a data test, with placeholders for what a night changed (a
    test's config is rendered when the project is parsed, before anything is built, so it
    cannot ask the warehouse; the placeholders are replaced here, when the test runs):
      __pending_ss12000_batches__  the SS 12000 batches not yet built into the attendance chain
      __pending_calendar_event_ids__  the calendar event ids those batches changed or deleted
      __rebuilt_lesson_days__      a condition: the row's lesson_date is a day those batches
                                   touched, or every day after a full rebuild of the bookkeeping
      __rebuilt_attendance_periods__  a condition: the row's period_start begins the week, month,
                                   term or year of such a day (or any period, likewise)
    On a full build every batch is pending, so the tests see every row. -#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where') -%}
    {%- if where -%}
        {%- if '__pending_ss12000_batches__' in where -%}
            {%- set where = where.replace('__pending_ss12000_batches__', pending_ss12000_batches(via_graph=true)) -%}
        {%- endif -%}
        {%- if '__pending_calendar_event_ids__' in where -%}
            {%- set where = where.replace('__pending_calendar_event_ids__', pending_ss12000_ids('calendar_events', via_graph=true)) -%}
        {%- endif -%}
        {%- if '__rebuilt_lesson_days__' in where -%}
            {%- set where = where.replace('__rebuilt_lesson_days__',
                '(lesson_date in (' ~ pending_lesson_days(via_graph=true) ~ ') or '
                ~ pending_rebuild_of_all_days(via_graph=true) ~ ')') -%}
        {%- endif -%}
        {%- if '__rebuilt_attendance_periods__' in where -%}
            {%- set where = where.replace('__rebuilt_attendance_periods__',
                '(period_start in (' ~ pending_period_starts(via_graph=true) ~ ') or '
                ~ pending_rebuild_of_all_days(via_graph=true) ~ ')') -%}
        {%- endif -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
