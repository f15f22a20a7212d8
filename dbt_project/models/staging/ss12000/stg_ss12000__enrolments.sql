{#- Every delivered enrolment row with the person version it came with; the current
    enrolments (those of the newest person version) are chosen in
    int_ss12000__current_enrolments. -#}

with

source as (

    select * from {{ source('ss12000', 'enrolments') }}

),

renamed as (

    select
        ---------- ids
        person_id,
        school_unit_id,
        batch_id,

        ---------- text
        upper(trim(school_type)) as school_type,

        ---------- numerics
        school_year,

        ---------- dates
        start_date,
        end_date,

        ---------- timestamps
        person_modified_at

    from source

)

select * from renamed
