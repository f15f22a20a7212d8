{#- None of the given columns holds a null: one scan of the model for all of them instead of a
    not_null test (a dbt node, with its fixed cost, and a scan) per column. Returns one row per
    column that has nulls, naming it, and fails with the number of null values. -#}
{% test not_null_columns(model, columns) %}

{{ config(fail_calc='coalesce(sum(null_rows), 0)') }}

with

null_counts as (

    select
        {%- for column in columns %}
        count(*) filter (where {{ column }} is null) as {{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    from {{ model }}

),

per_column as (

    select column_name, null_rows
    from null_counts
    unpivot (null_rows for column_name in ({{ columns | join(', ') }}))

)

select * from per_column
where null_rows > 0

{% endtest %}
