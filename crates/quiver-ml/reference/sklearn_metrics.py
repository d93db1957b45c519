# Reference values hard-coded in src/metrics.rs tests (scikit-learn 1.9.1, numpy 2.4.6).
import numpy as np
from sklearn import metrics as M
np.set_printoptions(precision=17)
# 24 rows, scores rounded to one decimal => many ties
y = np.array([0,1,1,0,1,0,0,1,1,0,0,1,0,1,1,0,0,0,1,1,0,1,0,1], float)
p = np.array([0.1,0.8,0.6,0.3,0.6,0.6,0.2,0.9,0.4,0.4,0.1,0.7,0.3,0.6,0.8,0.2,0.5,0.1,0.3,0.9,0.7,0.5,0.4,1.0])
w = np.array([1,2,0.5,1,1,3,1,0.25,1,2,1,1,1.5,1,1,0.5,2,1,1,1,1,4,1,1], float)
print("n", len(y), len(p), len(w))
print("roc_auc", repr(M.roc_auc_score(y,p)))
print("roc_auc_w", repr(M.roc_auc_score(y,p,sample_weight=w)))
print("ap", repr(M.average_precision_score(y,p)))
print("ap_w", repr(M.average_precision_score(y,p,sample_weight=w)))
print("log_loss", repr(M.log_loss(y,p)))  # p has 1.0 -> clipped
pc = np.clip(p, 1e-15, 1-1e-15)
print("log_loss_1e-15", repr(-np.mean(y*np.log(pc)+(1-y)*np.log(1-pc))))
print("brier", repr(M.brier_score_loss(y,p)))
fpr,tpr,thr = M.roc_curve(y,p,drop_intermediate=False)
print("roc_curve", list(zip(fpr.round(6),tpr.round(6),thr)))
# multiclass
yc = np.array([0,1,2,2,1,0,1,2,0,1])
P = np.array([[0.7,0.2,0.1],[0.1,0.6,0.3],[0.2,0.2,0.6],[0.3,0.4,0.3],[0.5,0.4,0.1],
              [0.4,0.4,0.2],[0.2,0.5,0.3],[0.1,0.1,0.8],[0.3,0.3,0.4],[0.25,0.5,0.25]])
print("mc log_loss", repr(M.log_loss(yc,P,labels=[0,1,2])))
pred = P.argmax(1)
print("pred", pred)
print("acc", repr(M.accuracy_score(yc,pred)))
print("cm", M.confusion_matrix(yc,pred,labels=[0,1,2]).tolist())
pr,rc,f1,sup = M.precision_recall_fscore_support(yc,pred,labels=[0,1,2],zero_division=0)
print("prec", [repr(v) for v in pr]); print("rec", [repr(v) for v in rc]); print("f1", [repr(v) for v in f1]); print("sup", sup)
print("macro_f1", repr(M.f1_score(yc,pred,average='macro')))
# regression
yr = np.array([3.0,-0.5,2.0,7.0,4.2,1.1])
pr_ = np.array([2.5,0.0,2.0,8.0,3.9,1.5])
print("rmse", repr(np.sqrt(M.mean_squared_error(yr,pr_))))
print("mae", repr(M.mean_absolute_error(yr,pr_)))
print("r2", repr(M.r2_score(yr,pr_)))
