-- Fewer index entries per ingested call (issue 6: ingestion throughput).
--
-- Most calls hold no refs, yet a GIN index stores an entry for every empty array: index only
-- the calls that have refs (ref filters add the matching `<> '{}'` condition, which a match
-- implies). A project has a handful of users, so an index on wb_user_id never narrows a scan
-- enough to pay for its upkeep on every insert.
drop index calls_project_user;
drop index calls_input_refs;
drop index calls_output_refs;
create index calls_input_refs on calls using gin (input_refs) where input_refs <> '{}';
create index calls_output_refs on calls using gin (output_refs) where output_refs <> '{}';
