-- QA's current database: stale data and QA's own fixtures, which every refresh keeps.
CREATE DATABASE shop;
\connect shop
CREATE TABLE customers (id bigserial PRIMARY KEY, email text NOT NULL);
INSERT INTO customers (email) VALUES ('stale@qa.test');
CREATE TABLE qa_fixtures (id serial PRIMARY KEY, label text NOT NULL);
INSERT INTO qa_fixtures (label) VALUES ('login as tester'), ('checkout with voucher');
