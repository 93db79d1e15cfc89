"""
Milvus入门实战：构建一个简单的文档语义搜索系统

运行前提：
1. pip install pymilvus numpy
2. Docker启动Milvus: 
   docker run -d --name milvus -p 19530:19530 -p 9091:9091 milvusdb/milvus:latest
"""

import numpy as np
from pymilvus import (
    connections,
    Collection,
    FieldSchema,
    CollectionSchema,
    DataType,
    utility
)

# ===== 1. 连接Milvus =====
print("=== 1. 连接Milvus ===")
connections.connect(alias="default", host="localhost", port="19530")
print("✓ 连接成功")

# ===== 2. 创建Collection =====
print("\n=== 2. 创建Collection ===")

# 如果Collection已存在，先删除
collection_name = "doc_search_demo"
if utility.has_collection(collection_name):
    utility.drop_collection(collection_name)
    print(f"✓ 已删除旧Collection: {collection_name}")

# 定义Schema
fields = [
    FieldSchema(name="id", dtype=DataType.INT64, is_primary=True, auto_id=True),
    FieldSchema(name="title", dtype=DataType.VARCHAR, max_length=200),
    FieldSchema(name="content", dtype=DataType.VARCHAR, max_length=1000),
    FieldSchema(name="embedding", dtype=DataType.FLOAT_VECTOR, dim=128)  # 简化用128维
]
schema = CollectionSchema(fields=fields, description="文档搜索演示")
collection = Collection(name=collection_name, schema=schema)
print(f"✓ 创建Collection: {collection_name}")

# ===== 3. 插入数据 =====
print("\n=== 3. 插入数据 ===")

# 模拟文档数据
documents = [
    {"title": "Python入门教程", "content": "Python是一门简单易学的编程语言，适合初学者"},
    {"title": "机器学习基础", "content": "机器学习是人工智能的一个分支，让计算机从数据中学习"},
    {"title": "深度学习实战", "content": "深度学习使用神经网络处理复杂任务，如图像识别"},
    {"title": "数据分析指南", "content": "数据分析帮助企业从数据中发现价值和洞察"},
    {"title": "Web开发入门", "content": "Web开发包括前端和后端，用于构建网站和应用"},
]

# 模拟生成Embedding（实际应该用模型如OpenAI、BERT等）
np.random.seed(42)
titles = [doc["title"] for doc in documents]
contents = [doc["content"] for doc in documents]
embeddings = np.random.rand(len(documents), 128).tolist()

# 插入数据
insert_result = collection.insert([titles, contents, embeddings])
print(f"✓ 插入 {len(documents)} 条文档")
print(f"  生成的ID: {insert_result.primary_keys}")

# ===== 4. 创建索引 =====
print("\n=== 4. 创建索引 ===")
index_params = {
    "metric_type": "L2",           # 使用欧氏距离
    "index_type": "IVF_FLAT",      # 使用IVF索引
    "params": {"nlist": 16}        # 聚类数量
}
collection.create_index(field_name="embedding", index_params=index_params)
print("✓ 索引创建成功")

# ===== 5. 加载到内存 =====
print("\n=== 5. 加载Collection ===")
collection.load()
print("✓ Collection已加载到内存")

# ===== 6. 向量搜索 =====
print("\n=== 6. 向量搜索 ===")

# 模拟一个查询向量（实际应该用相同模型生成）
query_embedding = np.random.rand(1, 128).tolist()

# 执行搜索
search_params = {
    "metric_type": "L2",
    "params": {"nprobe": 8}  # 搜索的聚类数量
}

results = collection.search(
    data=query_embedding,
    anns_field="embedding",
    param=search_params,
    limit=3,  # 返回Top 3
    output_fields=["title", "content"]  # 返回这些字段
)

# 输出搜索结果
print("搜索结果（Top 3）:")
for i, hits in enumerate(results):
    print(f"\n查询 {i+1} 的结果:")
    for rank, hit in enumerate(hits, 1):
        print(f"  {rank}. {hit.entity.get('title')}")
        print(f"     内容: {hit.entity.get('content')[:30]}...")
        print(f"     距离: {hit.distance:.4f}")

# ===== 7. 混合查询（向量 + 标量过滤）=====
print("\n=== 7. 混合查询 ===")

# 只在title包含"入门"的文档中搜索
results_filtered = collection.search(
    data=query_embedding,
    anns_field="embedding",
    param=search_params,
    limit=3,
    expr='title like "%入门%"',  # 标量过滤条件
    output_fields=["title", "content"]
)

print("过滤后的搜索结果（title包含'入门'）:")
for hits in results_filtered:
    for rank, hit in enumerate(hits, 1):
        print(f"  {rank}. {hit.entity.get('title')}")

# ===== 8. 清理资源 =====
print("\n=== 8. 清理资源 ===")
collection.release()  # 从内存释放
print("✓ Collection已释放")

# 断开连接
connections.disconnect("default")
print("✓ 已断开连接")

print("\n🎉 演示完成！")
