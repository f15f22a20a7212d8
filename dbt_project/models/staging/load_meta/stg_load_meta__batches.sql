with

source as (

    select * from {{ source('load_meta', 'batches') }}

),

renamed as (

    select
        ---------- ids
        batch_id,

        ---------- text
        source as source_system,
        watermark_from,
        watermark_to,
        manifest_path,

        ---------- numerics
        rows_received,
        rows_loaded,
        rows_quarantined,

        ---------- timestamps
        extracted_at,
        loaded_at

    from source

)

select * from renamed
