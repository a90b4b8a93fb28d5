/**
 * Generated messages for plans and benchmarks: one INSERT ... SELECT
 * generate_series. 100 channels, 5000 senders, dates spread over the daily
 * partitions made ahead (today and the next 7 days), one text token per row
 * shared by 1 in 5000 rows ("ticker<n>"), a URL entity on 1 row in 50, media
 * on 1 in 20; every row is processed but the last 1000.
 */
export const generateMessages = (from: number, count: number): string => `
  INSERT INTO messages (channel_id, message_id, version, date, sender_id, sender_kind, text, entities, media, raw,
                        received_at, processed_at)
  SELECT (g % 100) + 1, g, 0,
         date_trunc('day', now()) + (g % 691200) * interval '1 second',
         g % 5000, 'user',
         'ticker' || (g % 5000) || ' compra alvo ' || (g % 97) || ' stop ' || (g % 89),
         CASE WHEN g % 50 = 0 THEN '[{"type": "url", "offset": 0, "length": 6}]'::jsonb ELSE '[]'::jsonb END,
         CASE WHEN g % 20 = 0 THEN '{"type": "photo"}'::jsonb END,
         '{}'::jsonb, now(),
         CASE WHEN g <= ${from + count - 1000} THEN now() END
  FROM generate_series(${from}, ${from + count - 1}) AS g`
