{#- Every indicator cell of this release, before disclosure control: the union of the ind_*
    models (one per indicator of INDICATOR_RULES.md, in catalogue order). -#}

{%- set indicator_models = [
    'ind_hog_franvaro',
    'ind_mycket_hog_franvaro',
    'ind_ogiltig_franvaro_andel',
    'ind_rapporteringsgrad',
    'ind_orosanmalningar',
    'ind_forhandsbedomning_14_dagar',
    'ind_anmalan_till_utredning',
    'ind_utredning_4_manader',
    'ind_placerade_aterforening',
    'ind_unga_misstankta',
    'ind_unga_misstankta_upprepat',
    'ind_unga_brottsoffer',
    'ind_hog_franvaro_med_orosanmalan',
    'ind_hog_franvaro_med_misstanke',
    'ind_misstankta_med_hog_franvaro',
    'ind_kanda_av_flera',
    'ind_sst_effekt',
    'ind_sig_effekt',
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
        unit,
        contributors
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
