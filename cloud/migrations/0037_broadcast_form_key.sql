-- A broadcast sent from the web page carries the key its review handed out, once per person:
-- the same review sent twice (a double click, the browser's Back and Send again) finds the
-- first and tells nobody a second time.
ALTER TABLE broadcasts ADD COLUMN form_key text CHECK (length(form_key) BETWEEN 16 AND 64);
CREATE UNIQUE INDEX broadcasts_form_key ON broadcasts (sent_by, form_key)
    WHERE form_key IS NOT NULL;
