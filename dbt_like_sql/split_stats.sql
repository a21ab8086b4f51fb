-- size, quality and shape of each split, per product
with source as (
    select * from dataset_splits
),

renamed as (
    select
        product,
        split,
        count(*) as examples,
        count(distinct thread_id) as threads,
        count(distinct topic) as topics,
        round(avg(quality_score), 4) as mean_quality,
        round(avg(length(conversation_text)), 1) as mean_chars
    from source
    group by product, split
)

select * from renamed
order by split
