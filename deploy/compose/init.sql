-- The three stores of one deployment (the compose file's MariaDB runs this once, on an empty volume).
CREATE DATABASE IF NOT EXISTS roombook_global CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE DATABASE IF NOT EXISTS roombook_eu CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE DATABASE IF NOT EXISTS roombook_us CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
