{#- Every indicator cell of this release, before disclosure control. -#}

{%- set indicator_models = [
    'ind_hog_franvaro',
    'ind_orosanmalningar',
    'ind_forhandsbedomning_14_dagar',
    'ind_unga_misstankta',
    'ind_hog_franvaro_med_orosanmalan',
    'ind_kanda_av_flera',
] %}

with

{% for indicator_model in indicator_models %}
{{ indicator_model }} as (

    select
        indicator_id,
        indicator_name,
        period_type,
        period_start,
        period_end,
        area_level,
        area_code,
        area_name,
        breakdown,
        breakdown_value,
        numerator,
        denominator,
        value,
        unit
    from {{ ref(indicator_model) }}

),

{% endfor %}
unioned as (

    {% for indicator_model in indicator_models %}
    select * from {{ indicator_model }}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

)

select * from unioned
