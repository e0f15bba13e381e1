-- Production's shop: customers, orders with a foreign key and free-text notes; a read-only role.
CREATE ROLE relpromote_reader LOGIN PASSWORD 'molecule-reader-password' IN ROLE pg_read_all_data;
CREATE DATABASE shop;
\connect shop
CREATE TABLE customers (
    id bigserial PRIMARY KEY,
    email varchar(200) NOT NULL UNIQUE,
    full_name text NOT NULL,
    phone text,
    card_number text
);
CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id),
    amount numeric(10, 2) NOT NULL,
    status text NOT NULL,
    notes text
);
INSERT INTO customers (email, full_name, phone, card_number)
SELECT 'customer' || g || '@mail.example.com', (ARRAY['Alice', 'Bob', 'Chloé'])[1 + g % 3] || ' ' || (ARRAY['Smith', 'Okafor', 'Müller'])[1 + (g / 3) % 3],
       '+44 20 7946 ' || lpad(g::text, 4, '0'), '4111 1111 1111 ' || lpad(g::text, 4, '0')
  FROM generate_series(1, 500) g;
INSERT INTO orders (customer_id, amount, status, notes)
SELECT 1 + g % 500, g / 10.0, (ARRAY['new', 'paid'])[1 + g % 2], 'deliver to customer' || (1 + g % 500) || '@mail.example.com'
  FROM generate_series(1, 1500) g;
