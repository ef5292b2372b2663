"""The manifests of the seed documents (reference 000 and Magnum's guestbook era), verbatim."""

REDIS_MASTER_V1BETA3 = (
    "apiVersion: v1beta3\nkind: Pod\nmetadata:\n  labels:\n    name: redis\n    redis-sentinel: \"true\"\n"
    "    role: master\n  name: redis-master\nspec:\n  containers:\n    - name: master\n"
    "      image: kubernetes/redis:v1\n      env:\n        - name: MASTER\n          value: \"true\"\n"
    "      ports:\n        - containerPort: 6379\n      resources:\n        limits:\n          cpu: \"1\"\n"
    "      volumeMounts:\n        - mountPath: /redis-master-data\n          name: data\n"
    "    - name: sentinel\n      image: kubernetes/redis:v1\n      env:\n        - name: SENTINEL\n"
    "          value: \"true\"\n      ports:\n        - containerPort: 26379\n  volumes:\n"
    "    - name: data\n      emptyDir: {}\n")

REDIS_SENTINEL_SERVICE_V1BETA3 = (
    "apiVersion: v1beta3\nkind: Service\nmetadata:\n  labels:\n    name: sentinel\n    role: service\n"
    "  name: redis-sentinel\nspec:\n  ports:\n    - port: 26379\n      targetPort: 26379\n"
    "  selector:\n    redis-sentinel: \"true\"\n")

REDIS_RC_V1BETA3 = (
    "apiVersion: v1beta3\nkind: ReplicationController\nmetadata:\n  name: redis\nspec:\n  replicas: 2\n"
    "  selector:\n    name: redis\n  template:\n    metadata:\n      labels:\n        name: redis\n"
    "    spec:\n      containers:\n      - name: redis\n        image: kubernetes/redis:v1\n"
    "        ports:\n        - containerPort: 6379\n        resources:\n          limits:\n"
    "            cpu: \"0.1\"\n        volumeMounts:\n        - mountPath: /redis-master-data\n"
    "          name: data\n      volumes:\n        - name: data\n          emptyDir: {}\n")

REDIS_MASTER_V1BETA1 = """{
  "id": "redis-master",
  "kind": "Pod",
  "apiVersion": "v1beta1",
  "desiredState": {
    "manifest": {
      "version": "v1beta1",
      "id": "redis-master",
      "containers": [{
        "name": "master",
        "image": "dockerfile/redis",
        "cpu": 100,
        "ports": [{"containerPort": 6379, "hostPort": 6379}]
      }],
      "volumes": [{"name": "data", "source": {"emptyDir": {}}}]
    }
  },
  "labels": {"name": "redis-master"}
}"""

FRONTEND_RC_V1BETA1 = """{
  "id": "frontend-controller",
  "kind": "ReplicationController",
  "apiVersion": "v1beta1",
  "desiredState": {
    "replicas": 3,
    "replicaSelector": {"name": "frontend"},
    "podTemplate": {
      "desiredState": {
        "manifest": {
          "version": "v1beta1",
          "id": "frontend-controller",
          "containers": [{"name": "php-redis", "image": "kubernetes/example-guestbook-php-redis",
                          "ports": [{"name": "http-server", "containerPort": 80}]}]
        }
      },
      "labels": {"name": "frontend"}
    }
  },
  "labels": {"name": "frontend"}
}"""

FRONTEND_SERVICE_V1BETA1 = """{
  "id": "frontend",
  "kind": "Service",
  "apiVersion": "v1beta1",
  "port": 80,
  "containerPort": "http-server",
  "selector": {"name": "frontend"},
  "labels": {"name": "frontend"},
  "createExternalLoadBalancer": true
}"""
