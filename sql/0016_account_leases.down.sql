DROP TABLE IF EXISTS gateway_members;
DROP TABLE IF EXISTS account_leases;
