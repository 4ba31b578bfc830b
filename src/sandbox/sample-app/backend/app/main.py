"""The web app: health, a database query, an upload to the bucket and its download."""
import os
import uuid

import boto3
import psycopg2
from botocore.config import Config
from fastapi import FastAPI, File, HTTPException, UploadFile
from fastapi.responses import Response

from . import release

app = FastAPI(title="sample app (the plan's shape)")


def bucket_client():
    return boto3.client(
        "s3",
        endpoint_url=os.environ.get("S3_ENDPOINT_URL") or None,
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        config=Config(s3={"addressing_style": "path"}),
    )


@app.get("/health")
def health() -> dict:
    return {"status": "ok", "release": release(), "pid": os.getpid()}


@app.get("/api/v1/products")
def products() -> dict:
    conn = psycopg2.connect(os.environ["DATABASE_URL"], connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id, name FROM products ORDER BY id")
            return {"items": [{"id": r[0], "name": r[1]} for r in cur.fetchall()]}
    finally:
        conn.close()


@app.post("/api/v1/files")
async def upload(file: UploadFile = File(...)) -> dict:
    name = os.path.basename(file.filename or "file")
    key = f"uploads/{uuid.uuid4().hex}-{name}"
    data = await file.read()
    bucket_client().put_object(Bucket=os.environ["S3_BUCKET"], Key=key, Body=data)
    return {"key": key, "bytes": len(data), "url": f"/api/v1/files/{key}"}


@app.get("/api/v1/files/{key:path}")
def download(key: str) -> Response:
    client = bucket_client()
    try:
        obj = client.get_object(Bucket=os.environ["S3_BUCKET"], Key=key)
    except client.exceptions.NoSuchKey:
        raise HTTPException(status_code=404, detail="no such file")
    return Response(obj["Body"].read(), media_type="application/octet-stream")
