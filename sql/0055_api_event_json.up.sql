-- 0055: the API's poll gets each event's JSON from PostgreSQL.
--
-- api_event_pages (0009, 0021, 0041) returns an event as 22 columns; the API
-- decoded each into a row object (Dates, bigints), built the event and its
-- message as objects and serialised the page with JSON.stringify: the largest
-- share of the API's own work per poll after HTTP itself
-- (docs/benchmarks.md). api_event_pages_json returns the same rows, in the
-- same order, with the same `settled` (it reads them from api_event_pages:
-- one definition of the page and of the no-skip watermark, on plain
-- PostgreSQL and on TimescaleDB's compressed chunks alike), each event as the
-- text of its JSON object's members after `cursor`, exactly as
-- JSON.stringify writes the API's Event (src/programs/api/Api.ts) today:
--
--   head    "kind":...,"message":{...,"text":"...","entities":
--           (a deletion: every member, through "receivedAt", and the
--           closing brace; the other columns are NULL)
--   entities, media   the jsonb values (the API writes them with
--           JSON.stringify: jsonb's own text has spaces after ':' and ',')
--   middle  ,"replyToMessageId":...,"raw":
--   raw     the jsonb value
--   tail    },"deletedAt":...,"receivedAt":"..."}
--
-- The API writes `{"cursor":"<cursor>",` + head + entities + ',"media":' +
-- media + middle + raw + tail. Strings are written by to_json (the escapes
-- JSON.stringify writes: \" \\ \b \f \n \r \t, \u00xx below U+0020); a text
-- the store escaped (text_escaped, src/domain/PgSafeText.ts) is already its
-- JSON string's body; times are ISO 8601 in UTC with milliseconds, truncated
-- as the driver truncates microseconds; date and editDate are unix seconds.

CREATE FUNCTION api_event_pages_json(
  afters bigint[],
  channels bigint[],
  max_rows integer[],
  settle_seconds double precision
) RETURNS TABLE (
  request integer, settled boolean, event_seq bigint,
  head text, entities jsonb, media jsonb, middle text, raw jsonb, tail text
)
LANGUAGE plpgsql STABLE
AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
  SELECT p.request, p.settled, p.event_seq,
         '"kind":' || CASE WHEN p.deletion THEN '"deleted"' WHEN p.version = 0 THEN '"new"' ELSE '"edited"' END
           || ',"key":"' || p.channel_id || ':' || p.message_id || ':'
           || CASE WHEN p.deletion THEN 'deleted' ELSE p.version::text END
           || '","channelId":' || p.channel_id
           || ',"messageId":' || p.message_id
           || ',"version":' || CASE WHEN p.deletion THEN 'null' ELSE p.version::text END
           || ',"message":'
           || CASE WHEN p.deletion
                THEN 'null' || p.times
                ELSE '{"channelId":' || p.channel_id
                  || ',"messageId":' || p.message_id
                  || ',"date":' || floor(extract(epoch FROM p.date))::bigint
                  || ',"editDate":' || coalesce(floor(extract(epoch FROM p.edit_date))::bigint::text, 'null')
                  || ',"sender":' || CASE WHEN p.sender_kind IS NULL THEN 'null'
                       ELSE '{"id":' || coalesce(p.sender_id::text, 'null')
                         || ',"kind":' || to_json(p.sender_kind)::text
                         || ',"name":' || coalesce(to_json(p.sender_name)::text, 'null') || '}' END
                  || ',"text":' || CASE WHEN p.text_escaped THEN '"' || p.text || '"' ELSE to_json(p.text)::text END
                  || ',"entities":'
              END,
         CASE WHEN p.deletion THEN NULL ELSE p.entities END,
         CASE WHEN p.deletion THEN NULL ELSE p.media END,
         CASE WHEN p.deletion THEN NULL
           ELSE ',"replyToMessageId":' || coalesce(p.reply_to_message_id::text, 'null')
             || ',"groupedId":' || coalesce(to_json(p.grouped_id)::text, 'null')
             || ',"views":' || coalesce(p.views::text, 'null')
             || ',"forwards":' || coalesce(p.forwards::text, 'null')
             || ',"raw":' END,
         CASE WHEN p.deletion THEN NULL ELSE p.raw END,
         CASE WHEN p.deletion THEN NULL ELSE '}' || p.times END
  FROM (
    SELECT e.*,
           -- As the API tells a deletion (src/layers/PgMessageQuery.ts).
           (e.version IS NULL OR e.date IS NULL OR e.text IS NULL) AS deletion,
           ',"deletedAt":'
             || coalesce('"' || to_char(e.deleted_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') || '"', 'null')
             || ',"receivedAt":"' || to_char(e.received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') || '"}'
             AS times
    FROM api_event_pages(afters, channels, max_rows, settle_seconds) e
  ) p
  ORDER BY p.request, p.event_seq;
END
$$;
