-- wrk script: POST a 1 MiB body (wrk adds Content-Length itself).
-- The request is built once (static request), so wrk's CPU cost per upload is
-- only the write of 1 MiB to the socket.
wrk.method = "POST"
wrk.body = string.rep("u", 1024 * 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
