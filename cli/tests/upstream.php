<?php
// A router script for PHP's built-in server (`php -S`), for the proxy's tests: PHP reads headers
// through $_SERVER, where `X_Vonage_Jti` and `X-Vonage-Jti` would both be HTTP_X_VONAGE_JTI. It
// records, as one JSON line per request, the method, the path and every HTTP_* and CONTENT_*
// entry it was given, and answers 200.
$seen = [];
foreach ($_SERVER as $name => $value) {
    if (strncmp($name, 'HTTP_', 5) === 0 || strncmp($name, 'CONTENT_', 8) === 0) {
        $seen[$name] = $value;
    }
}
file_get_contents('php://input');
$entry = ['method' => $_SERVER['REQUEST_METHOD'], 'path' => $_SERVER['REQUEST_URI'], 'environ' => $seen];
file_put_contents(getenv('UPSTREAM_RECORD'), json_encode($entry) . "\n", FILE_APPEND | LOCK_EX);
header('Content-Type: text/plain');
echo 'ok';
