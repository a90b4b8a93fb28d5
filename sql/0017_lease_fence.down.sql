DROP FUNCTION IF EXISTS lease_fence(text, bigint);
