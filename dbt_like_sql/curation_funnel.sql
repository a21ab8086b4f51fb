-- where curation sends each conversation: kept or the filter that removed it
with source as (
    select * from scored_dataset
),

renamed as (
    select
        product,
        status,
        count(*) as conversations,
        round(avg(quality_score), 4) as mean_quality,
        sum(pii_total) as pii_entities_replaced
    from source
    group by product, status
)

select * from renamed
order by conversations desc
